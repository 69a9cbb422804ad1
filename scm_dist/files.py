"""Files the toolkit writes and reads: one atomic write, model state dicts.

Every file a run leaves (checkpoints' ``latest`` pointer, ``model_final.pt``, exports,
``results.json``, the resolved config) is written under a temporary name in its own
folder and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the config and the SLURM glue need none
    import torch

STATE_DICT_KEYS = ("state_dict", "model", "module")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_atomic(obj: object, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path``, atomically."""
    import torch

    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path``, atomically."""

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return write_atomic(path, write)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file (tensors only, never a pickled object) and return its model
    state dict, keys cleaned (:func:`~scm_dist.models.weights.clean_checkpoint_keys`)."""
    import torch

    from .models.weights import clean_checkpoint_keys

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise ValueError(f"{path} holds no model state dict (looked for {STATE_DICT_KEYS})")
    return clean_checkpoint_keys(checkpoint)
