"""DeiT encoder: timm's ``VisionTransformer`` whose blocks also give the attention CAM.

The blocks are timm's own (``Block`` with :class:`ClassTokenAttention` as its attention
layer), so the model keeps what timm's ViT gives: its init, ``set_grad_checkpointing``,
``no_weight_decay()``, ``forward_features`` / ``forward_intermediates`` and the
pretrained-cfg handling of ``build_model_with_cfg``.
"""

from __future__ import annotations

from typing import cast

import torch
from timm.models import VisionTransformer, checkpoint
from torch import nn

from .attention import AttentionImpl, ClassTokenAttention


def _block_with_attention(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one block; return its output and the attention it recorded (one function, so
    that a gradient checkpoint recomputes both together)."""
    attn = cast(ClassTokenAttention, block.attn)
    attn.record_cls_attention = True
    try:
        x = block(x)
    finally:
        attn.record_cls_attention = False
    return x, attn.pop_cls_attention()


class DeiTEncoder(VisionTransformer):
    """Patch embedding, class token, position embedding, blocks and final norm (timm).

    :meth:`encode` returns the normalised patch tokens [B, N, D] and the attention CAM
    A [B, N]: the class-token row of every block's softmax attention, averaged over the
    heads and summed over the blocks (docs/MODEL.md). The classifier is left to the
    subclass (``num_classes=0`` here).
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        attn_impl: AttentionImpl = "fused",
        in_chans: int = 3,
    ) -> None:
        if img_size % patch_size:
            raise ValueError(
                f"img_size {img_size} is not divisible by the patch size "
                f"{patch_size}; use a multiple of {patch_size}"
            )
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=0,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            attn_layer=ClassTokenAttention,
        )
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.set_attention_impl(attn_impl)

    def attention_layers(self) -> list[ClassTokenAttention]:
        return [cast(ClassTokenAttention, block.attn) for block in self.blocks]

    def set_attention_impl(self, impl: AttentionImpl) -> None:
        """Switch every block between the ``fused`` and the ``naive`` attention."""
        for attn in self.attention_layers():
            attn.impl = impl

    def check_input(self, images: torch.Tensor) -> None:
        """Raise a clear error when ``images`` do not fit the model's input size."""
        if images.ndim != 4 or images.shape[1] != self.in_chans:
            raise ValueError(f"expected images [B, {self.in_chans}, H, W], got shape {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f"input images are {images.shape[-2]}x{images.shape[-1]} but the model was "
                f"built for {self.img_size}x{self.img_size}; resize the images or create the "
                f"model with img_size={images.shape[-1]}"
            )

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised patch tokens [B, N, D] and the raw attention CAM A [B, N].

        With ``set_grad_checkpointing()`` each block (and its attention row) is recomputed
        in backward instead of keeping its activations (timm's non-reentrant checkpoint).
        """
        self.check_input(images)
        x = self.norm_pre(self.patch_drop(self._pos_embed(self.patch_embed(images))))
        rows: list[torch.Tensor] = []
        matrices: list[torch.Tensor] = []
        checkpointing = self.grad_checkpointing and torch.is_grad_enabled()
        for block in self.blocks:
            if checkpointing:
                x, attention = checkpoint(_block_with_attention, block, x, use_reentrant=False)
            else:
                x, attention = _block_with_attention(block, x)
            (rows if attention.ndim == 2 else matrices).append(attention)
        if matrices:  # naive path: sum the materialised maps, then take the class-token row
            rows.append(torch.stack(matrices).sum(dim=0)[:, 0, self.num_prefix_tokens :])
        return self.norm(x)[:, self.num_prefix_tokens :], torch.stack(rows).sum(dim=0)
