"""Start N real processes on this host (gloo), the way a launcher would."""
from __future__ import annotations

import json
import multiprocessing as mp
import socket
from pathlib import Path

from engine_workers import run_rank


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(job: dict, world_size: int, result_dir: Path, timeout: float = 400) -> list[dict]:
    """Run ``job`` on ``world_size`` spawned processes; return each rank's JSON result."""
    result_dir.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=run_rank, args=(r, world_size, port, job, str(result_dir)))
             for r in range(world_size)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    results = []
    for rank in range(world_size):
        path = result_dir / f"rank{rank}.json"
        assert path.is_file(), f"rank {rank} wrote no result (exit {procs[rank].exitcode})"
        result = json.loads(path.read_text())
        assert "error" not in result, f"rank {rank} failed:\n{result['error']}"
        results.append(result)
    return results
