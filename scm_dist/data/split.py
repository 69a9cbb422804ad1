"""Who reads which samples: ranges over a global sample order, split over ranks and workers.

A global order is a list of shards (each with its sample count); a range ``[start, stop)``
of it maps to per-shard segments. Eval splits the whole order into balanced contiguous
ranges (sizes differ by at most one, nothing padded or repeated); train gives every rank
exactly ``steps_per_epoch * batch_size`` samples and every worker a whole number of
batches, in the order the torch DataLoader asks its workers (round robin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """Samples ``[first, stop)`` (positions inside the shard) of shard number ``shard``."""

    shard: int
    first: int
    stop: int


def balanced_range(total: int, parts: int, index: int) -> tuple[int, int]:
    """``[start, stop)`` of part ``index`` when ``total`` items are cut into ``parts``
    contiguous parts whose sizes differ by at most one."""
    if not 0 <= index < parts:
        raise ValueError(f"part {index} of {parts} does not exist")
    return total * index // parts, total * (index + 1) // parts


def segments(order: Sequence[int], counts: Sequence[int], start: int, stop: int) -> list[Segment]:
    """The shard segments covering positions ``[start, stop)`` of the concatenation of
    shards ``order`` (``counts[s]`` samples in shard ``s``)."""
    out, offset = [], 0
    for shard in order:
        lo, hi = max(start, offset), min(stop, offset + counts[shard])
        if lo < hi:
            out.append(Segment(shard, lo - offset, hi - offset))
        offset += counts[shard]
        if offset >= stop:
            break
    return out


def worker_batches(steps: int, workers: int) -> list[int]:
    """Batches each of ``workers`` DataLoader workers makes so that round robin gives
    ``steps`` batches: the first ``steps % workers`` workers make one more."""
    return [steps // workers + (1 if w < steps % workers else 0) for w in range(workers)]


def batches_done(consumed: int, workers: int) -> list[int]:
    """Batches each worker had made when the round-robin DataLoader had yielded
    ``consumed`` batches."""
    return [consumed // workers + (1 if w < consumed % workers else 0) for w in range(workers)]


def logical_worker(physical: int, consumed: int, workers: int) -> int:
    """After resuming at ``consumed`` batches the DataLoader asks worker 0 first; it must
    play the worker that was next in the interrupted round robin."""
    return (physical + consumed) % workers
