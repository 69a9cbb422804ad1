"""Run an engine test job on N real processes on this host (gloo)."""

from __future__ import annotations

from engine_workers import run_job

from scm_dist.engine.spawn import spawn_local


def run_ranks(job: dict, world_size: int, timeout: float = 400) -> list[dict]:
    """Run ``job`` on ``world_size`` processes; return each rank's result."""
    return spawn_local(run_job, world_size, (job,), timeout=timeout)
