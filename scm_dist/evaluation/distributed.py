"""Summing metric counters across torch.distributed ranks."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist


class Counted(Protocol):
    def counts(self) -> np.ndarray: ...

    def load_counts(self, counts: np.ndarray) -> None: ...


def all_reduce_counts(meter: Counted, device: torch.device | str = "cpu") -> None:
    """Replace ``meter``'s counters by their sum over all ranks (no-op without a group).

    ``device`` must suit the backend: "cpu" for gloo, the rank's GPU for nccl.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    counts = torch.from_numpy(meter.counts()).to(device)
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    meter.load_counts(counts.cpu().numpy())
