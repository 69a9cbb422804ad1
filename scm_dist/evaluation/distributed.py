"""Summing metric counters across ranks, through the runtime's collectives."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from ..runtime import Runtime


class Counted(Protocol):
    def counts(self) -> np.ndarray: ...

    def load_counts(self, counts: np.ndarray) -> None: ...


def all_reduce_counts(meter: Counted, runtime: Runtime) -> None:
    """Replace ``meter``'s integer counters by their sum over all ranks (on the
    runtime's device: NCCL takes CUDA tensors only)."""
    total = runtime.sum(torch.from_numpy(meter.counts()))
    meter.load_counts(total.cpu().numpy())
