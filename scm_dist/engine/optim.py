"""AdamW parameter groups and the learning-rate schedules (per optimizer step)."""

from __future__ import annotations

import math
from collections.abc import Callable

from timm.optim import param_groups_weight_decay
from torch import nn

from ..config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups the way the SCM release's timm ``create_optimizer`` builds them: no
    weight decay for every parameter with ndim <= 1 (biases, norms, SCM's lambda and t)
    nor for the model's ``no_weight_decay()`` names (pos_embed, cls_token); decay the rest.
    """
    no_weight_decay = getattr(model, "no_weight_decay", None)
    no_decay = no_weight_decay() if no_weight_decay is not None else ()
    return param_groups_weight_decay(model, weight_decay, no_weight_decay_list=no_decay)


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """The LR actually used: ``lr * global_batch / base_batch_size`` under linear scaling."""
    if cfg.lr_scaling == "linear":
        return cfg.lr * global_batch / cfg.base_batch_size
    if cfg.lr_scaling == "none":
        return cfg.lr
    raise ValueError(f"optim.lr_scaling must be linear or none, got {cfg.lr_scaling!r}")


def lr_multiplier(
    cfg: OptimConfig, steps_per_epoch: int, total_steps: int, peak_lr: float | None = None
) -> Callable[[int], float]:
    """Multiplier of the peak LR after ``step`` optimizer steps (LambdaLR).

    ``peak_lr`` is the LR the multiplier scales (:func:`scaled_lr`; default ``cfg.lr``).
    ``cfg.min_lr`` is the cosine schedule's absolute floor, as timm's ``lr_min``: it is not
    scaled with the batch, so the floor multiplier is ``min_lr / peak_lr``.
    """
    peak_lr = cfg.lr if peak_lr is None else peak_lr
    if cfg.schedule == "cosine" and cfg.min_lr > peak_lr:
        raise ValueError(
            f"optim.min_lr={cfg.min_lr} is above the peak LR {peak_lr}; "
            "min_lr is an absolute floor: set it below the (scaled) LR"
        )
    floor = cfg.min_lr / peak_lr if peak_lr else 0.0
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule not in ("step", "cosine"):
        raise ValueError(f"optim.schedule must be step or cosine, got {cfg.schedule!r}")
    decay_steps = sorted(e * steps_per_epoch for e in cfg.decay_epochs)

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "step":
            return cfg.decay_rate ** sum(step >= s for s in decay_steps)
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier
