"""The one stop flag: set from a signal handler, read by the training loop at step boundaries.

No torch here: the SLURM glue imports it on hosts that only submit jobs.
"""

from __future__ import annotations

import threading


class StopFlag:
    """Thread- and signal-safe: ``set()`` asks training to checkpoint and return."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()
