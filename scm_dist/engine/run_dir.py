"""Opening the output directory for one run: checked, created, locked on the main rank."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from ..runtime import Runtime
from .run_lock import RunLock, RunLockedError
from .safe_io import RunStateError


class OutputDirError(RunStateError):
    """``train.output_dir`` cannot be created or written."""


def prepare_output_dir(path: str | Path) -> Path:
    """Create ``path`` and check that files can be written in it (one-line errors)."""
    path = Path(path)
    hint = "choose another train.output_dir"
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"train.output_dir={path} is a file, not a directory; {hint}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a real write: os.access says yes to root on a read-only file system
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except (FileExistsError, NotADirectoryError):
        raise OutputDirError(
            f"train.output_dir={path}: a parent of it is a file, not a directory; {hint}"
        ) from None
    except PermissionError:
        raise OutputDirError(f"train.output_dir={path} is not writable (permission denied); {hint}") from None
    except OSError as err:
        reason = "read-only file system" if err.errno == errno.EROFS else (err.strerror or str(err))
        raise OutputDirError(f"train.output_dir={path} is not writable ({reason}); {hint}") from None
    return path


def open_run(output_dir: str | Path, runtime: Runtime) -> RunLock | None:
    """On the main rank: prepare ``output_dir`` and lock it; every rank raises if that failed."""
    error: RunStateError | None = None
    lock = None
    if runtime.is_main:
        try:
            prepare_output_dir(output_dir)
            lock = RunLock(output_dir)
            lock.acquire()
        except RunStateError as err:
            error = err
    failed = runtime.broadcast_flag(error is not None)  # only the main rank opens the directory
    if error is not None:
        raise error
    if failed:
        raise RunLockedError(f"rank 0 could not open train.output_dir={output_dir} (see its error)")
    return lock
