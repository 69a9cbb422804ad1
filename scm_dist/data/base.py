"""What every train loader shares: epochs, the saved data position, corrupt-sample counts;
and the eval batch type."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .device_input import HostImages

log = logging.getLogger(__name__)


@dataclass
class EvalBatch:
    """One eval batch: images ``[B, 3, S, S]`` uint8 (normalised on the evaluation's device
    with :func:`~scm_dist.data.device_input.normalize`), labels ``[B]`` int64,
    boxes ``B`` float32 tensors ``[n_i, 4]`` (x0, y0, x1, y1 in the S x S frame), the
    samples' keys and their ``sample_id`` (position in the split, same in every format)."""

    images: torch.Tensor
    labels: torch.Tensor
    boxes: list[torch.Tensor]
    keys: list[str]
    sample_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.keys)

    def pin_memory(self) -> EvalBatch:
        """What the DataLoader's pin-memory thread calls (on CUDA hosts): the images pinned."""
        self.images = self.images.pin_memory()
        return self


def loader_workers(workers: int) -> int:
    """Worker processes to start: the configured number, 0 meaning the main process."""
    if workers < 0:
        raise ValueError(f"data.workers must be >= 0, got {workers}")
    return min(workers, os.cpu_count() or 1) if workers else 0


class TrainLoader(ABC):
    """Iterable of ``(images, labels int64 [B])`` for one rank; ``images`` is a
    :class:`~scm_dist.data.device_input.HostImages` whose ``to_model(device)`` is the model's
    float32 ``[B, 3, crop, crop]`` input on that device.

    ``steps_per_epoch`` is the same on every rank. The data position is the epoch and the
    number of batches this rank has handed out in it; ``state_dict`` saves it and
    ``load_state_dict`` makes the next iteration continue right after the last batch
    handed out. Iterating again after a full epoch without ``set_epoch`` moves to the next
    epoch. Each subclass's docstring says what a resume restores exactly.
    """

    def __init__(
        self,
        *,
        fmt: str,
        num_classes: int,
        steps_per_epoch: int,
        rank: int,
        world_size: int,
        batch_size: int,
        seed: int,
    ) -> None:
        if steps_per_epoch < 1:
            raise ValueError(
                f"{world_size} rank(s) x batch {batch_size} is more than one "
                "epoch of data: lower data.batch_size or use more samples"
            )
        self.format = fmt
        self.num_classes = num_classes
        self.steps_per_epoch = steps_per_epoch
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.seed = batch_size, seed
        self.skipped_corrupt = 0
        self._epoch, self._consumed, self._resuming = 0, 0, False

    @property
    def epoch(self) -> int:
        return self._epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (unless a loaded position is in that epoch)."""
        if self._resuming and epoch == self._epoch:
            return
        self._epoch, self._consumed, self._resuming = epoch, 0, False

    def layout(self) -> dict[str, Any]:
        """What the batch order depends on besides the epoch; equal layouts resume exactly."""
        return {
            "format": self.format,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "steps_per_epoch": self.steps_per_epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        """The data position: epoch, batches handed out in it, and the layout."""
        return {
            "epoch": self._epoch,
            "batches": self._consumed,
            "layout": self.layout(),
            "skipped_corrupt": self.skipped_corrupt,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position. With another layout (world size, batch size,
        seed, workers of a WebDataset loader, ...) the position is converted to the same
        fraction of the epoch, which is NOT exact: samples may repeat or be skipped."""
        epoch, consumed = int(state["epoch"]), int(state["batches"])
        saved = state.get("layout", {})
        if saved != self.layout():
            old = saved.get("steps_per_epoch", self.steps_per_epoch) or 1
            consumed = consumed * self.steps_per_epoch // old
            log.warning(
                "data position saved with layout %s, resuming with %s: continuing "
                "epoch %d at batch %d, not exactly where it stopped",
                saved,
                self.layout(),
                epoch,
                consumed,
            )
        self._epoch, self._consumed, self._resuming = epoch, consumed, True
        self.skipped_corrupt = int(state.get("skipped_corrupt", 0))

    def __iter__(self) -> Iterator[tuple[HostImages, torch.Tensor]]:
        if self._consumed >= self.steps_per_epoch and not self._resuming:
            self._epoch, self._consumed = self._epoch + 1, 0
        self._resuming = False
        for images, labels in self._batches(self._epoch, self._consumed):
            self._consumed += 1
            yield images, labels

    def _count_skipped(self, skipped: int) -> None:
        if skipped:
            self.skipped_corrupt += skipped
            log.warning(
                "rank %d: skipped %d undecodable sample(s) (%d so far)",
                self.rank,
                skipped,
                self.skipped_corrupt,
            )

    @abstractmethod
    def _batches(self, epoch: int, consumed: int) -> Iterator[tuple[HostImages, torch.Tensor]]:
        """Batches ``consumed..steps_per_epoch-1`` of ``epoch`` on this rank."""
