"""Checkpoints: atomic directories, a ``latest`` pointer, the last k kept.

Layout under ``<output_dir>/checkpoints``::

    step_00000120/          the backend's files (Accelerate state or ZeRO shards),
                            trainer.pt (step, epoch, model identity, world size, config)
                            rank00000.pt ... (each rank's RNG states and data position)
    latest                  the name of the newest complete checkpoint

A checkpoint is written under a temporary name and renamed when every rank has
finished, so a directory named ``step_*`` is always complete.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..files import write_text_atomic
from .backend import Backend

log = logging.getLogger(__name__)
LATEST = "latest"


class ResumeError(RuntimeError):
    """A checkpoint cannot continue this run (another model, world size, engine ...)."""


class CheckpointManager:
    """Saves and finds the run's checkpoints (every rank calls every method)."""

    def __init__(self, output_dir: str | Path, keep_last: int, backend: Backend) -> None:
        self.root = Path(output_dir) / "checkpoints"
        self.keep_last = max(1, keep_last)
        self.backend = backend

    def latest(self) -> Path | None:
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        path = self.root / pointer.read_text().strip()
        return path if path.is_dir() else None

    def resolve(self, resume: str) -> Path | None:
        """``auto``: the latest checkpoint if any; ``none``; or an explicit directory."""
        if resume == "none":
            return None
        if resume == "auto":
            return self.latest()
        path = Path(resume)
        if not (path / "trainer.pt").is_file():
            raise ResumeError(
                f"train.resume={resume}: not a checkpoint directory "
                "(it holds no trainer.pt); use auto, none or a step_* directory"
            )
        return path

    def save(self, step: int, trainer_state: dict[str, Any], rank_state: dict[str, Any]) -> Path:
        final = self.root / f"step_{step:08d}"
        tmp = self.root / f".step_{step:08d}.partial"
        if self.backend.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.backend.barrier()
        self.backend.save(tmp)
        torch.save(rank_state, tmp / f"rank{self.backend.rank:05d}.pt")
        if self.backend.is_main:
            torch.save(trainer_state, tmp / "trainer.pt")
        self.backend.barrier()
        if self.backend.is_main:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            write_text_atomic(self.root / LATEST, final.name)
            self._prune()
        self.backend.barrier()
        log.info("checkpoint written: %s", final)
        return final

    def _prune(self) -> None:
        done = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in done[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)

    def read_trainer_state(self, directory: Path) -> dict[str, Any]:
        return torch.load(directory / "trainer.pt", map_location="cpu", weights_only=False)

    def read_rank_state(self, directory: Path) -> dict[str, Any]:
        path = directory / f"rank{self.backend.rank:05d}.pt"
        if not path.is_file():
            raise ResumeError(
                f"{directory} has no state for rank {self.backend.rank}: it was written by fewer processes"
            )
        return torch.load(path, map_location="cpu", weights_only=False)
