"""The TS-CAM / SCM model: DeiT encoder, 3x3 conv class-map head, optional SCM."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn

from .attention import AttentionImpl
from .encoder import DeiTEncoder
from .functional import minmax
from .scm import SCMImpl, SCMPrecision, SpatialCalibration

MapFamily = Literal["tscam", "scm"]
# Each family's localization map, as its own release computes it (docs/MODEL.md, inference):
LOCALIZATION_MAPS: dict[str, str] = {
    "tscam": "A * S_k (TS-CAM release: raw attention sum, not min-max normalised)",
    "scm": "minmax(A) * S_k (SCM release)",
}


class WSOLOutput(NamedTuple):
    """Eval-mode output of every model of the family."""

    logits: torch.Tensor  # [B, K] = GAP of the class maps
    cams: torch.Tensor  # [B, K, h, w] localization maps = attention * class maps
    attention: torch.Tensor  # [B, h, w] the attention factor of ``cams`` (family's own)
    class_maps: torch.Tensor  # [B, K, h, w] head output S
    map_family: MapFamily  # whose localization map ``cams`` is (LOCALIZATION_MAPS)


class DeiTWSOL(DeiTEncoder):
    """DeiT + conv head; with ``use_scm`` the training logits go through SCM.

    ``attn_impl`` ("fused" | "naive") and ``scm_impl`` ("fast" | "literal") pick the
    implementations; the defaults are the efficient ones, the others are references.
    ``scm_precision`` ("fp32" | "tf32") is the precision of SCM's N x N products.

    Encoder parameters keep the classic timm ViT names (``patch_embed.proj``,
    ``blocks.{i}.attn.qkv``, ...), so DeiT and release checkpoints map one to one.

    Train mode returns logits [B, K] (through SCM when ``use_scm``). Eval mode never
    runs SCM and returns a :class:`WSOLOutput` whose maps are the family's own
    (:data:`LOCALIZATION_MAPS`): SCM models (``use_scm``) give ``minmax(A) * S``, TS-CAM
    models the raw attention sum ``A * S``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        use_scm: bool = False,
        attn_impl: AttentionImpl = "fused",
        scm_impl: SCMImpl = "fast",
        scm_precision: SCMPrecision = "fp32",
        in_chans: int = 3,
        **unused,
    ) -> None:
        if unused:
            raise TypeError(f"unknown model arguments: {sorted(unused)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        super().__init__(
            img_size,
            patch_size,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias,
            drop_path_rate,
            attn_impl,
            in_chans,
        )
        self.num_classes = num_classes
        # the conv head replaces timm's linear classifier (left as Identity by the encoder)
        self.head = nn.Conv2d(embed_dim, num_classes, kernel_size=3, padding=1)  # type: ignore[assignment]
        self.scm = (
            SpatialCalibration(self.grid_size, impl=scm_impl, precision=scm_precision) if use_scm else None
        )
        self.map_family: MapFamily = "scm" if use_scm else "tscam"

    def no_weight_decay(self) -> set[str]:
        """Parameter names timm's optimizer helpers keep out of weight decay."""
        return {"pos_embed", "cls_token"}

    def class_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return class maps S [B, K, h, w] and the raw attention CAM A [B, N]."""
        tokens, attention_cam = self.encode(images)
        batch, _, dim = tokens.shape
        grid = tokens.transpose(1, 2).reshape(batch, dim, *self.grid_size)
        return self.head(grid), attention_cam

    def forward(self, images: torch.Tensor) -> torch.Tensor | WSOLOutput:  # type: ignore[override]
        class_maps, attention_cam = self.class_maps(images)
        if self.training:
            if self.scm is not None:
                class_maps = self.scm(class_maps, attention_cam)
            return class_maps.mean(dim=(2, 3))
        if self.map_family == "scm":
            attention_cam = minmax(attention_cam, dim=1)
        attention = attention_cam.reshape(-1, 1, *self.grid_size)
        return WSOLOutput(
            logits=class_maps.mean(dim=(2, 3)),
            cams=attention.to(class_maps.dtype) * class_maps,
            attention=attention.squeeze(1),
            class_maps=class_maps,
            map_family=self.map_family,
        )
