"""Checkpoints: atomic directories, a strictly resolved ``latest`` pointer, the last k kept.

Layout under ``<output_dir>/checkpoints``::

    step_00000120/          the backend's files (model.pt + optimizer.pt, or ZeRO shards),
                            trainer.pt (step, epoch, model identity, world size, peak LR, config)
                            rank00000.pt ... (each rank's RNG states and data position)
                            complete.json (every file above with its size, written last)
    latest                  the name of the newest complete checkpoint

A checkpoint is written under a temporary name and renamed when every rank has
finished. Every file is read with ``torch.load(weights_only=True)`` (see safe_io), so a
crafted checkpoint cannot run code. ``latest`` is resolved strictly: a pointer to a
missing, incomplete or truncated checkpoint falls back to the newest complete one with a
warning, or stops with an error; training never starts over on top of checkpoints unless
``train.resume=none`` and ``train.overwrite=true`` say so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..files import write_text_atomic
from .backend import Backend
from .safe_io import CheckpointWriteError, ResumeError, describe_write_error, load_plain, save_plain

log = logging.getLogger(__name__)
LATEST = "latest"
COMPLETE = "complete.json"
TRAINER = "trainer.pt"
STEP_NAME = re.compile(r"^step_\d{8}$")

__all__ = ["CheckpointManager", "ResumeError", "checkpoint_problem"]


def _file_sizes(directory: Path) -> dict[str, int]:
    return {
        str(p.relative_to(directory)): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != COMPLETE
    }


def checkpoint_problem(directory: Path) -> str | None:
    """Why ``directory`` is not a complete checkpoint (missing, truncated ...), or None."""
    if not directory.is_dir():
        return f"{directory} does not exist" if not directory.exists() else f"{directory} is not a directory"
    record = directory / COMPLETE
    if not record.is_file():
        return f"{directory} is incomplete (no {COMPLETE}: its writer stopped before the end)"
    try:
        files = json.loads(record.read_text())["files"]
        items = [(str(name), int(size)) for name, size in files.items()]
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{record} is unreadable"
    for name, size in items:
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            return f"{record} names a file outside the checkpoint: {name!r}"
        if not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != size:
            return f"{path} is truncated ({path.stat().st_size} of {size} bytes)"
    return None


class CheckpointManager:
    """Saves and finds the run's checkpoints (every rank calls every method)."""

    def __init__(self, output_dir: str | Path, keep_last: int, backend: Backend) -> None:
        self.root = Path(output_dir) / "checkpoints"
        self.keep_last = max(1, keep_last)
        self.backend = backend

    # -- finding ------------------------------------------------------------------------
    def step_dirs(self) -> list[Path]:
        """Every ``step_*`` directory, newest first (complete or not)."""
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.iterdir() if STEP_NAME.match(p.name)), reverse=True)

    def newest_complete(self, excluding: Path | None = None) -> Path | None:
        for path in self.step_dirs():
            if path != excluding and checkpoint_problem(path) is None:
                return path
        return None

    def _older_hint(self, path: Path) -> str:
        older = self.newest_complete(excluding=path)
        if older is None:
            return f"no other complete checkpoint is in {self.root}"
        return f"an older complete checkpoint exists: resume from it with train.resume={older}"

    def _latest(self) -> Path | None:
        pointer = self.root / LATEST
        steps = self.step_dirs()
        if not pointer.exists() and not steps:
            return None  # a fresh run
        if not pointer.is_file():
            reason = f"{pointer} is missing"
            named = None
        else:
            name = pointer.read_text().strip()
            named = self.root / name if STEP_NAME.match(name) else None
            if not name:
                reason = f"{pointer} is empty"
            elif named is None:
                reason = f"{pointer} names {name!r}, which is not a step_* checkpoint"
            else:
                problem = checkpoint_problem(named)
                if problem is None:
                    return named
                reason = f"{pointer} names {name}, but {problem}"
        fallback = self.newest_complete(excluding=named)
        if fallback is not None:
            log.warning("%s; resuming from the newest complete checkpoint %s instead", reason, fallback)
            return fallback
        raise ResumeError(
            f"{reason}, and {self.root} holds no other complete checkpoint. Resume from a checkpoint "
            "directory with train.resume=<dir>, or start over with train.resume=none "
            f"train.overwrite=true (deletes the checkpoints in {self.root})"
        )

    def resolve(self, resume: str, overwrite: bool = False) -> Path | None:
        """``auto``: the latest complete checkpoint, if any; ``none``: start over (refused on
        top of existing checkpoints unless ``overwrite``); or an explicit directory."""
        if resume == "none":
            existing = self.step_dirs()
            if existing and not overwrite:
                raise ResumeError(
                    f"train.resume=none but {self.root} holds checkpoints ({existing[0].name} ...): "
                    "continue with train.resume=auto, start over with train.overwrite=true "
                    "(deletes them), or use another train.output_dir"
                )
            if existing:
                self._clear()
            return None
        if resume == "auto":
            return self._latest()
        path = Path(resume)
        problem = checkpoint_problem(path)
        if problem is not None:
            raise ResumeError(f"train.resume={resume}: {problem}; {self._older_hint(path)}")
        return path

    def _clear(self) -> None:
        """Delete every checkpoint (``train.resume=none train.overwrite=true``)."""
        if self.backend.is_main:
            log.warning("train.overwrite=true: deleting the checkpoints in %s and starting over", self.root)
            for path in self.step_dirs():
                shutil.rmtree(path)
            (self.root / LATEST).unlink(missing_ok=True)
        self.backend.barrier()

    # -- reading --------------------------------------------------------------------------
    @contextmanager
    def reading(self, directory: Path) -> Iterator[None]:
        """Errors while resuming from ``directory`` say which older checkpoint exists."""
        try:
            yield
        except ResumeError as err:
            raise ResumeError(f"{err}; {self._older_hint(directory)}") from None

    def read_trainer_state(self, directory: Path) -> dict[str, Any]:
        state = load_plain(directory / TRAINER)
        if not isinstance(state, dict) or not {"step", "epoch", "identity"} <= set(state):
            raise ResumeError(f"{directory / TRAINER} is not a trainer state (step, epoch, identity)")
        return state

    def read_rank_state(self, directory: Path) -> dict[str, Any]:
        path = directory / f"rank{self.backend.rank:05d}.pt"
        if not path.is_file():
            raise ResumeError(
                f"{directory} has no state for rank {self.backend.rank}: it was written by fewer processes"
            )
        state = load_plain(path)
        if not isinstance(state, dict) or not {"rng", "data"} <= set(state):
            raise ResumeError(f"{path} is not a rank state (rng, data)")
        return state

    # -- writing --------------------------------------------------------------------------
    def save(self, step: int, trainer_state: dict[str, Any], rank_state: dict[str, Any]) -> Path:
        final = self.root / f"step_{step:08d}"
        tmp = self.root / f".step_{step:08d}.partial"
        try:
            if self.backend.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            self.backend.barrier()
            try:
                self.backend.save(tmp)
            except OSError as err:
                raise CheckpointWriteError(describe_write_error(tmp, err)) from None
            save_plain(rank_state, tmp / f"rank{self.backend.rank:05d}.pt")
            if self.backend.is_main:
                save_plain(trainer_state, tmp / TRAINER)
            self.backend.barrier()
            if self.backend.is_main:
                record = tmp / COMPLETE
                try:
                    record.write_text(json.dumps({"step": step, "files": _file_sizes(tmp)}, indent=1))
                except OSError as err:
                    raise CheckpointWriteError(describe_write_error(record, err)) from None
                self._swap_in(tmp, final)
                self._prune()
        except (OSError, CheckpointWriteError) as err:
            if self.backend.is_main:
                shutil.rmtree(tmp, ignore_errors=True)  # give the space back
            if isinstance(err, CheckpointWriteError):
                raise
            raise CheckpointWriteError(describe_write_error(tmp, err)) from None
        self.backend.barrier()
        log.info("checkpoint written: %s", final)
        return final

    def _swap_in(self, tmp: Path, final: Path) -> None:
        """Rename the finished ``tmp`` to ``final`` and point ``latest`` at it; a checkpoint of
        the same step (re-written after a resume) is replaced, never deleted first."""
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        write_text_atomic(self.root / LATEST, final.name)
        shutil.rmtree(old, ignore_errors=True)

    def _prune(self) -> None:
        for old in self.step_dirs()[self.keep_last :]:
            shutil.rmtree(old, ignore_errors=True)
