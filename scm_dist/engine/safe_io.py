"""Reading and writing run files without executing code and with one-line errors.

Every file a resume reads goes through :func:`load_plain`: ``torch.load(weights_only=True)``
accepts tensors and plain data (dict, list, tuple, str, int, float, bool, None) and refuses
any other pickled object, so a crafted checkpoint cannot run code. Writes go through
:func:`save_plain`, which turns a full disk or a refused write into one line naming the file.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class RunStateError(RuntimeError):
    """The run's output directory or checkpoints cannot be used as they are; the message
    says which file and what to do."""


class ResumeError(RunStateError):
    """A checkpoint cannot continue this run (another model, world size, engine, unsafe or
    unreadable file ...)."""


class CheckpointWriteError(RunStateError):
    """A run file could not be written (full disk, read-only file system ...)."""


def _unpickler_reason(err: BaseException) -> str:
    """torch's line that names the refused global, without its advice to allow it."""
    for line in str(err).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(" Please use", 1)[0].strip()
    return _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def load_plain(path: str | Path, allowed: Sequence[type] = (), map_location: Any = "cpu") -> Any:
    """Tensors and plain data from a ``torch.save`` file; never unpickles other objects.
    ``allowed``: classes a library stores whose instances are plain data (no code runs
    to rebuild them: an Enum, or attributes restored by ``__dict__`` update)."""
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"checkpoint file missing: {path}")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ResumeError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain data "
            f"(not written by scm-dist, or tampered with): {_unpickler_reason(err)}"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        raise ResumeError(f"{path} is truncated or corrupt: {_first_line(err)}") from None


def describe_write_error(path: str | Path, err: BaseException) -> str:
    """One line for a failed write of ``path``."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device while writing {path}; free space or choose another train.output_dir"
        )
    if isinstance(err, OSError) and err.errno == errno.EROFS:
        return f"cannot write {path}: read-only file system; choose another train.output_dir"
    return f"cannot write {path}: {_first_line(err)}"


def torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` whose failed writes are ``OSError`` with their errno (ENOSPC ...).

    Serialised in memory, then written by Python: torch's own file writer reports a full
    disk only as "unexpected pos", even through a Python file object."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with open(path, "wb") as file:
        file.write(buffer.getbuffer())
        file.flush()
        os.fsync(file.fileno())


def save_plain(obj: Any, path: str | Path) -> None:
    """``torch.save`` of tensors and plain data; a failed write is a CheckpointWriteError."""
    try:
        torch_save(obj, path)
    except (OSError, RuntimeError) as err:
        raise CheckpointWriteError(describe_write_error(path, err)) from None
