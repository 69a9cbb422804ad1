"""Launcher glue: ranks from the environment the launchers set, seeding, RNG state.

torchrun, ``accelerate launch``, the ``deepspeed`` launcher and the SLURM glue in
``launch/`` all export RANK, WORLD_SIZE and LOCAL_RANK; this is the one place the
engine reads them.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LaunchEnv:
    """What the launcher meant: this process's rank and the world size."""

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_environment(cls) -> LaunchEnv:
        return cls(
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        )


class WorldSizeError(RuntimeError):
    """The processes that train together are not the ones the launcher started."""


def check_world_size(seen: int, launched: LaunchEnv, expected: int) -> None:
    """Fail fast when a launch silently trains alone (see STACK_NOTES.md)."""
    if seen != launched.world_size:
        raise WorldSizeError(
            f"the launcher started {launched.world_size} processes but the backend sees a world "
            f"of {seen}: each process would train alone. On a CPU host launch with "
            "`accelerate launch --config_file configs/accelerate/cpu_2proc.yaml` or torchrun."
        )
    if expected and seen != expected:
        raise WorldSizeError(
            f"train.expected_world_size={expected} but {seen} processes are "
            "running; change the launch or the config"
        )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG state of this process as tensors and plain data (loadable with
    ``weights_only=True``; restored by :func:`set_rng_state`)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["name"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["pos"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
