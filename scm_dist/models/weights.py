"""Checkpoint conversion for ``timm.create_model(..., pretrained=True, file=PATH)``.

Three sources load into every model of the family:

* DeiT ImageNet checkpoints (``{'model': ...}``): the 1000-class linear head
  (``head.weight`` [1000, D]) is dropped; the conv head keeps its fresh init.
* Official SCM / TS-CAM release checkpoints (DataParallel ``module.`` keys, SCM
  scalars ``layers.{l}.fuse._loss_rate`` and ``layers.{l}.thred`` of shape [1]).
* This project's checkpoints (training or encoder-only export).

The filter returns a complete state dict for a strict load: parameters the source
cannot provide (a dropped head, SCM scalars when loading an encoder) keep the model's
own initial values and are logged. Anything else missing, unexpected or of the wrong
shape is an error that names the file and the keys.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from .encoder import DeiTEncoder

_logger = logging.getLogger(__name__)

_RELEASE_SCM_KEY = re.compile(r"^layers\.(\d+)\.(fuse\._loss_rate|thred)$")
_RELEASE_TO_OURS = {"fuse._loss_rate": "lam", "thred": "t"}


class CheckpointMismatchError(ValueError):
    """A checkpoint file does not fit the model it is loaded into."""


class CheckpointFileError(ValueError):
    """A file given as a checkpoint is not one (or holds objects weights_only refuses)."""


_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a"  # torch.save before 1.6: pickle protocol 2, a long magic number


def check_checkpoint_file(path: str | Path) -> None:
    """Raise :class:`CheckpointFileError` (one line naming the file) unless ``path`` is a
    ``.safetensors`` file or a torch.save file that loads with ``weights_only=True``. Zip
    checkpoints are memory-mapped, so the check reads little more than the pickled index."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return
    with open(path, "rb") as f:
        head = f.read(4)
    if not (zipfile.is_zipfile(path) or head == _LEGACY_TORCH_MAGIC):
        raise CheckpointFileError(
            f"{path} is not a PyTorch checkpoint (neither a torch.save zip nor a .safetensors file; "
            "text, tar or another format?): give the .pth/.pt file itself"
        )
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointFileError(
            f"{path} holds Python objects that weights-only loading refuses to unpickle ({first}); "
            "nothing was executed: re-save its state dict (tensors only) with torch.save"
        ) from err
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as err:
        raise CheckpointFileError(
            f"{path} is a damaged or truncated PyTorch checkpoint ({type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); copy it again"
        ) from err


def clean_checkpoint_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our key names for any checkpoint of the family: ``module.`` (DataParallel) stripped,
    the release's SCM scalars renamed to ``scm.layers.{l}.lam`` / ``.t``."""
    renamed = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        match = _RELEASE_SCM_KEY.match(key)
        if match:
            key = f"scm.layers.{match.group(1)}.{_RELEASE_TO_OURS[match.group(2)]}"
        renamed[key] = value
    return renamed


def _describe(keys: set[str], limit: int = 12) -> str:
    ordered = sorted(keys)
    shown = ", ".join(ordered[:limit])
    return shown + (f" ... (+{len(ordered) - limit} more)" if len(ordered) > limit else "")


def convert_checkpoint(
    state_dict: dict[str, torch.Tensor], model: nn.Module, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map a DeiT, release or own state dict onto ``model``'s keys (see module doc)."""
    if not isinstance(model, DeiTEncoder):
        raise TypeError(
            f"convert_checkpoint loads models of the DeiT WSOL family, not {type(model).__name__}"
        )
    state_dict = clean_checkpoint_keys(state_dict)
    target = model.state_dict()
    kept_init: list[str] = []

    head = state_dict.get("head.weight")
    if head is not None and head.ndim == 2:  # DeiT linear classifier: not our conv head
        _logger.info("%s: dropping the linear classifier head %s", source, tuple(head.shape))
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}

    if "pos_embed" in state_dict and state_dict["pos_embed"].shape != target["pos_embed"].shape:
        old = tuple(state_dict["pos_embed"].shape)
        grid = model.grid_size
        state_dict["pos_embed"] = resample_abs_pos_embed(
            state_dict["pos_embed"], new_size=list(grid), num_prefix_tokens=1
        )
        _logger.info("%s: resampled pos_embed %s -> %s", source, old, tuple(state_dict["pos_embed"].shape))

    dropped_scm = {k for k in state_dict if k.startswith("scm.") and k not in target}
    if dropped_scm:
        _logger.info("%s: model has no SCM; ignoring %d SCM parameters", source, len(dropped_scm))
        state_dict = {k: v for k, v in state_dict.items() if k not in dropped_scm}

    unexpected = set(state_dict) - set(target)
    missing = set(target) - set(state_dict)
    for key in sorted(missing):
        if key.startswith(("head.", "scm.")):
            state_dict[key] = target[key]
            kept_init.append(key)
    missing -= set(kept_init)
    wrong_shape = {
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(target[k].shape)}"
        for k in set(state_dict) & set(target)
        if state_dict[k].shape != target[k].shape
    }
    problems = []
    if missing:
        problems.append(f"missing keys: {_describe(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_describe(unexpected)}")
    if wrong_shape:
        problems.append(f"shape mismatches: {_describe(wrong_shape)}")
    if problems:
        raise CheckpointMismatchError(
            f"{source} does not match {type(model).__name__} "
            f"(num_classes={getattr(model, 'num_classes', '?')}, grid={model.grid_size}): "
            + "; ".join(problems)
            + ". Check the model name, num_classes and img_size against the checkpoint."
        )
    if kept_init:
        _logger.info("%s: kept the initial values of %s", source, _describe(set(kept_init)))
    return state_dict


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: :func:`convert_checkpoint` naming the file."""
    source = getattr(model, "pretrained_cfg", {}).get("file") or "checkpoint"
    return convert_checkpoint(state_dict, model, source=str(source))


def check_pos_embed(
    state: dict[str, torch.Tensor], model: DeiTEncoder, checkpoint: str | Path, allowed: bool
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
    _logger.warning(
        "%s: resampling the position embedding from %d to %d tokens (%s grid; model.resample_pos_embed=true)",
        checkpoint,
        saved.shape[1],
        target.shape[1],
        grid,
    )
