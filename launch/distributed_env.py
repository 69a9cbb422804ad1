"""SLURM task -> torch.distributed environment (the one place env vars become ranks).

Inside a SLURM job step each task learns its place from SLURM (through
``submitit.JobEnvironment``); torch.distributed and the engine read the standard
variables RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import submitit

PORT_BASE = 20000
PORT_SPAN = 20000


@dataclass(frozen=True)
class DistributedEnv:
    """Where one task sits in the job and how it reaches the others."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    job_id: str

    def as_env(self) -> dict[str, str]:
        return {
            "RANK": str(self.rank),
            "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(self.local_rank),
            "LOCAL_WORLD_SIZE": str(self.local_world_size),
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": str(self.master_port),
        }


def port_for_job(job_id: str) -> int:
    """A rendezvous port in [20000, 40000) derived from the numeric SLURM job id."""
    return PORT_BASE + int(job_id) % PORT_SPAN


def first_hostname(nodelist: str) -> str:
    """First host of a SLURM node list such as ``node[1-2]``, expanded by ``scontrol``."""
    out = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True, timeout=60
    )
    return out.stdout.split()[0]


def from_slurm() -> DistributedEnv:
    """Read this task's ranks from the running SLURM job (call inside a job step)."""
    job = submitit.JobEnvironment()
    job_id = os.environ["SLURM_JOB_ID"]  # unique per array task, unlike job.job_id's A_i form
    return DistributedEnv(
        rank=job.global_rank,
        world_size=job.num_tasks,
        local_rank=job.local_rank,
        local_world_size=max(1, job.num_tasks // job.num_nodes),
        master_addr=first_hostname(os.environ["SLURM_JOB_NODELIST"]),
        master_port=port_for_job(job_id),
        job_id=job_id,
    )


def export(env: DistributedEnv) -> None:
    """Set the torch.distributed variables in this process's environment."""
    os.environ.update(env.as_env())
