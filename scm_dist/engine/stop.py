"""A stop request set from a signal handler and polled by the loop at step boundaries."""

from __future__ import annotations

import threading


class StopRequest:
    """Thread- and signal-safe flag: ``set()`` asks training to checkpoint and return."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()
