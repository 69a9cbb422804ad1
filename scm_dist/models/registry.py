"""Registration of ``deit_{tscam,scm}_{tiny,small,base}_patch16_224`` in timm."""

from __future__ import annotations

import difflib
import os
from typing import Any, cast

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .weights import check_checkpoint_file, checkpoint_filter_fn
from .wsol import DeiTWSOL

SIZES = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
}
MODEL_NAMES = tuple(f"deit_{kind}_{size}_patch16_224" for kind in ("tscam", "scm") for size in SIZES)


def _cfg() -> dict[str, Any]:
    # No url and no hub id: weights come only from a local file (pretrained_cfg_overlay).
    # classifier=None: head handling is done by checkpoint_filter_fn, not by timm.
    return dict(
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=None,
        crop_pct=1.0,
        interpolation="bilinear",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="patch_embed.proj",
        classifier=None,
    )


default_cfgs = generate_default_cfgs({name: _cfg() for name in MODEL_NAMES})


def _create(variant: str, use_scm: bool, size: str, pretrained: bool, **kwargs) -> DeiTWSOL:
    if pretrained:
        overlay = kwargs.get("pretrained_cfg_overlay") or {}
        path = overlay.get("file")
        if not path:
            raise ValueError(
                f"{variant}: pretrained=True needs a local file, e.g. "
                "pretrained_cfg_overlay=dict(file='deit_small_patch16_224.pth'); "
                "nothing is ever downloaded"
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{variant}: checkpoint file not found: {path}")
        check_checkpoint_file(path)
    # architecture kwargs (depth=..., embed_dim=...) may override the size, the timm way
    model_args = {**SIZES[size], **kwargs}
    return build_model_with_cfg(
        DeiTWSOL,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        use_scm=use_scm,
        patch_size=16,
        **model_args,
    )


@register_model
def deit_tscam_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiTWSOL:
    """DeiT-Ti TS-CAM (patch 16; any img_size divisible by 16)."""
    return _create("deit_tscam_tiny_patch16_224", False, "tiny", pretrained, **kwargs)


@register_model
def deit_tscam_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiTWSOL:
    """DeiT-S TS-CAM (patch 16; any img_size divisible by 16)."""
    return _create("deit_tscam_small_patch16_224", False, "small", pretrained, **kwargs)


@register_model
def deit_tscam_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiTWSOL:
    """DeiT-B TS-CAM (patch 16; any img_size divisible by 16)."""
    return _create("deit_tscam_base_patch16_224", False, "base", pretrained, **kwargs)


@register_model
def deit_scm_tiny_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiTWSOL:
    """DeiT-Ti SCM (patch 16; any img_size divisible by 16)."""
    return _create("deit_scm_tiny_patch16_224", True, "tiny", pretrained, **kwargs)


@register_model
def deit_scm_small_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiTWSOL:
    """DeiT-S SCM (patch 16; any img_size divisible by 16)."""
    return _create("deit_scm_small_patch16_224", True, "small", pretrained, **kwargs)


@register_model
def deit_scm_base_patch16_224(pretrained: bool = False, **kwargs: Any) -> DeiTWSOL:
    """DeiT-B SCM (patch 16; any img_size divisible by 16)."""
    return _create("deit_scm_base_patch16_224", True, "base", pretrained, **kwargs)


def create_wsol_model(name: str, **kwargs) -> DeiTWSOL:
    """``timm.create_model`` with a helpful error for names outside the family."""
    if name not in MODEL_NAMES:
        close = difflib.get_close_matches(name, MODEL_NAMES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} Known: {', '.join(MODEL_NAMES)}")
    return cast(DeiTWSOL, timm.create_model(name, **kwargs))
