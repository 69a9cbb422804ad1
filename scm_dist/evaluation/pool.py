"""A process pool that runs a function over chunks of work and sums integer counts."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import cv2
import numpy as np


def _single_threaded() -> None:
    """Workers are the parallelism: keep each one to one thread."""
    cv2.setNumThreads(1)


class CountPool:
    """Sum of ``function(chunk)`` int64 count arrays, over ``workers`` processes.

    ``workers=0`` runs in this process. The pool starts on first use, spawned (the
    caller's main module must be import-safe), and is shut down by :meth:`close` (or when
    the object is garbage collected). Not forked: a fork copies the locks of the caller's
    threads (OpenCV's pool, TensorBoard's writer, CUDA) and a worker can wait on one forever.
    """

    def __init__(self, workers: int = 0) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def sum_counts(
        self, function: Callable[..., np.ndarray], chunks: Sequence[tuple[Any, ...]], size: int
    ) -> np.ndarray:
        """``sum(function(*chunk) for chunk in chunks)`` (``size`` int64s when empty)."""
        total = np.zeros(size, np.int64)
        if self.workers == 0 or len(chunks) < 2:
            for chunk in chunks:
                total += function(*chunk)
            return total
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_single_threaded
            )
        for counts in self._executor.map(function, *zip(*chunks)):
            total += counts
        return total

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"workers": self.workers, "_executor": None}


def split(count: int, parts: int) -> list[slice]:
    """``parts`` contiguous, nearly equal slices of ``range(count)`` (none empty)."""
    parts = max(1, min(parts, count))
    bounds = np.linspace(0, count, parts + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
