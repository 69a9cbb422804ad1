"""DeiT encoder (ViT with a class token) that also accumulates the attention CAM."""

from __future__ import annotations

import torch
from timm.layers import DropPath, Mlp, PatchEmbed, trunc_normal_
from torch import nn

from .attention import AttentionImpl, ClassTokenAttention


class Block(nn.Module):
    """Pre-norm transformer block; returns its output and its class-token attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop_path: float,
        impl: AttentionImpl,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ClassTokenAttention(dim, num_heads, qkv_bias=qkv_bias, impl=impl)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, attention = self.attn(self.norm1(x))
        x = x + self.drop_path(attended)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, attention


class DeiTEncoder(nn.Module):
    """Patch embedding, class token, position embedding, blocks and final norm.

    ``forward_features`` returns the normalised patch tokens [B, N, D] and the attention CAM
    A [B, N]: class-token row of every block's softmax attention, averaged over
    heads and summed over blocks.
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
        super().__init__()
        if img_size % patch_size:
            raise ValueError(
                f"img_size {img_size} is not divisible by the patch size "
                f"{patch_size}; use a multiple of {patch_size}"
            )
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim
        )
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rate, attn_impl) for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def set_attention_impl(self, impl: AttentionImpl) -> None:
        """Switch every block between the ``fused`` and the ``naive`` attention."""
        for block in self.blocks:
            block.attn.impl = impl

    def check_input(self, images: torch.Tensor) -> None:
        """Raise a clear error when ``images`` do not fit the model's input size."""
        if images.ndim != 4 or images.shape[1] != self.patch_embed.proj.in_channels:
            raise ValueError(
                f"expected images [B, {self.patch_embed.proj.in_channels}, H, W], "
                f"got shape {tuple(images.shape)}"
            )
        if tuple(images.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f"input images are {images.shape[-2]}x{images.shape[-1]} but the model was "
                f"built for {self.img_size}x{self.img_size}; resize the images or create the "
                f"model with img_size={images.shape[-1]}"
            )

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(images)
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        rows, full_maps = [], []
        for block in self.blocks:
            x, attention = block(x)
            (rows if attention.ndim == 2 else full_maps).append(attention)
        if full_maps:  # naive path: sum the materialised maps, then take the class-token row
            rows.append(torch.stack(full_maps).sum(dim=0)[:, 0, 1:])
        attention_cam = torch.stack(rows).sum(dim=0)
        return self.norm(x)[:, 1:], attention_cam
