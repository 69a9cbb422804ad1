"""SLURM task -> torch.distributed environment, through submitit.

Inside a SLURM job step, ``submitit.helpers.TorchDistributedEnvironment`` reads the task's
place from SLURM (global rank, local rank, tasks, nodes, the job's first host) and exports
RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT, which
:class:`scm_dist.runtime.Runtime` then reads. Its MASTER_PORT rule is kept as is: a port in
[20000, 60000] drawn from a generator seeded with the job id (``<id>`` or ``<array id>_<task>``),
the same on every task of a job and different between the tasks of an array; our own rule
(20000 + id mod 20000) added nothing to that. A MASTER_PORT already in the environment wins
(sbatch exports the submitter's environment, so do not submit from a shell that sets one).
"""

from __future__ import annotations

from dataclasses import dataclass

from submitit import JobEnvironment
from submitit.helpers import TorchDistributedEnvironment


@dataclass(frozen=True)
class TaskPlace:
    """Where one task sits in the job and how it reaches the others (for the job's log lines)."""

    rank: int
    world_size: int
    master_addr: str
    master_port: int
    job_id: str  # SLURM_JOB_ID: unique per array task (what scontrol requeue takes)


def export_from_slurm() -> TaskPlace:
    """Export the torch.distributed variables for this SLURM task (call inside a job step)."""
    # our RANK etc. always win over values inherited from the submitting shell; the GPU is
    # chosen from LOCAL_RANK by the runtime, so every task keeps seeing all the node's GPUs
    env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return TaskPlace(
        rank=env.rank,
        world_size=env.world_size,
        master_addr=env.master_addr,
        master_port=env.master_port,
        job_id=JobEnvironment().raw_job_id,
    )
