"""Checks that a checkpoint fits the evaluation before any metric is computed."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("scm_dist.eval")


def check_class_count(checkpoint: str | Path, model_classes: int, val_classes: int, val_dir: str) -> None:
    """The checkpoint's classifier must have one output per class of the val set."""
    if model_classes != val_classes:
        raise ValueError(
            f"{checkpoint} predicts {model_classes} classes but the val set {val_dir} has {val_classes} "
            "(its manifest.json): evaluate a checkpoint trained on this data set, or point "
            "data.val_dir at the val shards of the checkpoint's data set"
        )


def check_pos_embed(
    state: dict[str, torch.Tensor], model: nn.Module, checkpoint: str | Path, allowed: bool
) -> None:
    """A position embedding for another grid is resampled only when asked for, and logged."""
    saved, target = state.get("pos_embed"), model.state_dict().get("pos_embed")
    if saved is None or target is None or saved.shape == target.shape or saved.shape[-1] != target.shape[-1]:
        return  # same grid, or another model: the strict load reports it
    grid = "x".join(map(str, model.grid_size))
    if not allowed:
        raise ValueError(
            f"{checkpoint} has a position embedding of {saved.shape[1]} tokens but the model at "
            f"data.eval_size needs {target.shape[1]} (a {grid} grid): set data.eval_size to the "
            "checkpoint's training size, or model.resample_pos_embed=true to resample it (outputs change)"
        )
    log.warning(
        "%s: resampling the position embedding from %d to %d tokens (%s grid; model.resample_pos_embed=true)",
        checkpoint,
        saved.shape[1],
        target.shape[1],
        grid,
    )
