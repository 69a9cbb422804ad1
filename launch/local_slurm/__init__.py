"""A real SLURM cluster on this host for development and tests (`make slurm-up`)."""

from launch.local_slurm.cluster import LocalSlurm, LocalSlurmError, missing_binaries

__all__ = ["LocalSlurm", "LocalSlurmError", "missing_binaries"]
