"""Checkpoints in the SCM / TS-CAM releases' layout, written from one of our models."""

from __future__ import annotations

import torch


def release_checkpoint(model: torch.nn.Module) -> dict:
    """The official releases' layout: DataParallel ``module.`` keys, SCM scalars renamed."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("scm.layers."):
            _, _, layer, name = key.split(".")
            key = f"layers.{layer}.fuse._loss_rate" if name == "lam" else f"layers.{layer}.thred"
        state[f"module.{key}"] = value.clone()
    return {"epoch": 29, "state_dict": state, "best_map": 76.4}
