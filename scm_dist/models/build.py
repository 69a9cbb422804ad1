"""The configured model: for training (``model.pretrained`` or random) or from a checkpoint.

Used by the application layer (``scm_dist.app``) and the benchmarks; the engine and the
evaluation receive the built module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..files import read_state_dict
from .registry import create_wsol_model
from .weights import check_pos_embed, convert_checkpoint
from .wsol import DeiTWSOL


def build_model(
    cfg: ModelConfig, num_classes: int, img_size: int | None = None, load_pretrained: bool = True
) -> DeiTWSOL:
    """The configured model (at ``img_size``, default ``model.img_size``), from
    ``model.pretrained`` when it names a file and ``load_pretrained`` is set."""
    kwargs: dict[str, Any] = dict(
        num_classes=num_classes,
        img_size=img_size or cfg.img_size,
        drop_path_rate=cfg.drop_path_rate,
        attn_impl=cfg.attn_impl,
        scm_impl=cfg.scm_impl,
        scm_precision=cfg.scm_precision,
    )
    if cfg.depth:
        kwargs["depth"] = cfg.depth
    if load_pretrained and cfg.pretrained:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=cfg.pretrained))
    return create_wsol_model(cfg.name, **kwargs)


def model_from_checkpoint(cfg: ModelConfig, checkpoint: str | Path, img_size: int) -> DeiTWSOL:
    """The configured model at ``img_size`` with the checkpoint's weights (strict), in eval mode."""
    state = read_state_dict(checkpoint)
    head = state.get("head.weight")
    if head is None or head.ndim != 4:
        raise ValueError(
            f"{checkpoint} has no conv class-map head (head.weight [K, D, 3, 3]); "
            "it is not a TS-CAM / SCM checkpoint"
        )
    num_classes = head.shape[0]
    if cfg.num_classes and cfg.num_classes != num_classes:
        raise ValueError(f"{checkpoint} has {num_classes} classes but model.num_classes={cfg.num_classes}")
    model = build_model(cfg, num_classes, img_size=img_size, load_pretrained=False)
    check_pos_embed(state, model, checkpoint, cfg.resample_pos_embed)
    model.load_state_dict(convert_checkpoint(state, model, source=str(checkpoint)))
    return model.eval()
