"""Checks that a checkpoint fits the evaluation before any metric is computed."""

from __future__ import annotations

from pathlib import Path


def check_class_count(checkpoint: str | Path, model_classes: int, val_classes: int, val_dir: str) -> None:
    """The checkpoint's classifier must have one output per class of the val set."""
    if model_classes != val_classes:
        raise ValueError(
            f"{checkpoint} predicts {model_classes} classes but the val set {val_dir} has {val_classes} "
            "(its manifest.json): evaluate a checkpoint trained on this data set, or point "
            "data.val_dir at the val shards of the checkpoint's data set"
        )
