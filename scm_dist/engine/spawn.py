"""Start N processes on this host with the environment a launcher would set.

For benchmarks and tests on one machine; real runs use torchrun, ``accelerate launch``,
the deepspeed launcher or ``scm-submit``. The processes are started and watched by
``torch.multiprocessing`` (a failing process ends the others and its traceback is
raised here); their return values come back through a queue.
"""

from __future__ import annotations

import os
import queue as queue_module
import socket
import time
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, threads: int, fn: Callable, args: tuple, results) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        OMP_NUM_THREADS=str(threads),
    )
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import torch

    torch.set_num_threads(threads)
    results.put((rank, fn(*args)))


def spawn_local(
    fn: Callable, world_size: int, args: tuple = (), threads: int = 1, timeout: float = 600
) -> list[Any]:
    """Run ``fn(*args)`` on ``world_size`` processes; return the per-rank results.

    A process that raises (or dies) makes this raise RuntimeError with its traceback.
    """
    results = mp.get_context("spawn").Queue()
    context = mp.start_processes(
        _entry,
        args=(world_size, free_port(), threads, fn, args, results),
        nprocs=world_size,
        join=False,
        start_method="spawn",
    )
    collected: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while True:
            _drain(results, collected)
            try:
                if context.join(timeout=1.0):
                    break
            except ProcessException as err:
                raise RuntimeError(f"rank {err.error_index} failed:\n{err}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no result within {timeout:.0f} s")
        while len(collected) < world_size:  # every process has exited: its result is queued
            try:
                rank, value = results.get(timeout=5)
            except queue_module.Empty:
                break
            collected[rank] = value
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join()
    missing = [r for r in range(world_size) if r not in collected]
    if missing:
        raise RuntimeError(f"rank(s) {missing} exited without a result")
    return [collected[r] for r in range(world_size)]


def _drain(results, collected: dict[int, Any]) -> None:
    while True:
        try:
            rank, value = results.get_nowait()
        except queue_module.Empty:
            return
        collected[rank] = value
