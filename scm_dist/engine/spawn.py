"""Start N processes on this host with the environment a launcher would set.

For benchmarks and tests on one machine; real runs use torchrun, ``accelerate launch``,
the deepspeed launcher or ``scm-submit``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, threads: int, fn: Callable, args: tuple, queue) -> None:
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
    try:
        queue.put((rank, "ok", fn(*args)))
    except BaseException as err:  # report, then let the process fail
        import traceback

        queue.put((rank, "error", traceback.format_exc()))
        raise err


def spawn_local(
    fn: Callable, world_size: int, args: tuple = (), threads: int = 1, timeout: float = 600
) -> list[Any]:
    """Run ``fn(*args)`` on ``world_size`` processes; return the per-rank results."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [
        ctx.Process(target=_entry, args=(r, world_size, port, threads, fn, args, queue))
        for r in range(world_size)
    ]
    for proc in procs:
        proc.start()
    results: dict[int, Any] = {}
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(results) < world_size and not errors:
            try:
                rank, status, value = queue.get(timeout=1.0)
            except queue_module.Empty:
                dead = [
                    (r, p.exitcode)
                    for r, p in enumerate(procs)
                    if p.exitcode not in (None, 0) and r not in results
                ]
                if dead:
                    errors.append(f"process(es) died without a result: {dead}")
                elif time.monotonic() > deadline:
                    errors.append(f"no result within {timeout:.0f} s")
                continue
            if status == "ok":
                results[rank] = value
            else:
                errors.append(f"rank {rank} failed:\n{value}")
    finally:
        for proc in procs:
            proc.join(5 if errors else max(1.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
    if errors:
        raise RuntimeError("\n".join(errors))
    return [results[r] for r in range(world_size)]
