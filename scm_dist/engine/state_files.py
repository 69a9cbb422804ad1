"""Model, optimizer and schedule state as plain ``torch.save`` files (Accelerate backend).

Accelerate's ``save_state`` / ``load_state`` unpickle their files (and FSDP's sharded
format stores pickled metadata), so a crafted checkpoint would run code on resume. We
write the full (unsharded) model and optimizer state dicts with the ``torch.distributed``
state-dict API instead, which works the same for a plain module, DDP and FSDP, and read
them back with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.optim import Optimizer

from .safe_io import ResumeError, load_plain, save_plain

MODEL_FILE = "model.pt"
OPTIMIZER_FILE = "optimizer.pt"


def save_training_state(
    directory: Path,
    model: nn.Module,
    optimizer: Optimizer,
    extra: dict[str, Any],
    is_main: bool,
) -> None:
    """Write ``model.pt`` and ``optimizer.pt`` (with ``extra``: schedule, loss scaler) on the
    main rank; every rank must call it (FSDP gathers the full state)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=options)
    if is_main:
        save_plain(model_state, directory / MODEL_FILE)
        save_plain({"optimizer": optimizer_state, **extra}, directory / OPTIMIZER_FILE)


def load_training_state(directory: Path, model: nn.Module, optimizer: Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote; returns the ``extra`` entries."""
    model_file, optimizer_file = directory / MODEL_FILE, directory / OPTIMIZER_FILE
    model_state = load_plain(model_file)
    saved = load_plain(optimizer_file)
    if not isinstance(model_state, dict) or not isinstance(saved, dict) or "optimizer" not in saved:
        raise ResumeError(f"{model_file} / {optimizer_file} do not hold a model and optimizer state")
    options = StateDictOptions(full_state_dict=True)
    try:
        set_model_state_dict(model, model_state, options=options)
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise ResumeError(f"{model_file} does not fit this model: {str(err).strip()[:300]}") from None
    try:
        set_optimizer_state_dict(model, optimizer, saved.pop("optimizer"), options=options)
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise ResumeError(f"{optimizer_file} does not fit this optimizer: {str(err).strip()[:300]}") from None
    return saved
