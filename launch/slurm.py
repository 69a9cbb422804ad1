"""Submit training (and evaluation) to SLURM through submitit.

One task per GPU (or ``tasks_per_node`` on CPU nodes); each task maps SLURM's variables
to torch.distributed ranks (``launch.distributed_env``, submitit's
TorchDistributedEnvironment) and runs ``launch.jobs``.
"""

from __future__ import annotations

import copy
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError
from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

from launch.jobs import EvalFn, EvalJob, TrainFn, TrainJob, app_evaluate, app_train
from launch.sweep import SweepPoint
from scm_dist.config import ExperimentConfig

SIGNAL_SLACK_S = 120  # SLURM sends --signal up to 60 s early; leave start-up time as well


class SubmitError(RuntimeError):
    """SLURM refused the job or is not there; the message carries SLURM's own words."""


@dataclass
class Resources:
    """What one job asks SLURM for."""

    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 0  # 0: one per GPU (one when there are no GPUs)
    cpus_per_task: int = 0  # 0: SLURM's default (scm-submit fills in what the loaders need)
    time_min: int = 60
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    mem: str = ""  # sbatch --mem syntax: 32G, 4000M, 0 (all)
    exclusive: bool = False
    signal_delay_s: int = 120  # USR2 this long before the time limit

    @property
    def ntasks_per_node(self) -> int:
        if self.tasks_per_node:
            return self.tasks_per_node
        return self.gpus_per_node or 1

    def sbatch_parameters(self, job_name: str, dependency: str = "") -> dict[str, Any]:
        """submitit SlurmExecutor parameters (sbatch names), only those that are set."""
        if self.nodes < 1 or self.ntasks_per_node < 1:
            raise SubmitError("--nodes and --tasks-per-node must be at least 1")
        if self.time_min * 60 < self.signal_delay_s + SIGNAL_SLACK_S:
            raise SubmitError(
                f"--time {self.time_min} min leaves no room for the checkpoint signal "
                f"{self.signal_delay_s} s before the end: SLURM may send it up to "
                f"{SIGNAL_SLACK_S} s early, before the job has started; raise --time or lower "
                "--signal-delay"
            )
        params: dict[str, Any] = dict(
            job_name=job_name,
            nodes=self.nodes,
            time=self.time_min,
            ntasks_per_node=self.ntasks_per_node,
            signal_delay_s=self.signal_delay_s,
            # one task failing ends the step (no rank left hanging)
            srun_args=["--kill-on-bad-exit=1"],
        )
        if dependency:  # a failed training cancels its evaluation instead of leaving it queued
            params["additional_parameters"] = {"kill-on-invalid-dep": "yes"}
        optional = dict(
            gpus_per_node=self.gpus_per_node,
            cpus_per_task=self.cpus_per_task,
            partition=self.partition,
            account=self.account,
            qos=self.qos,
            constraint=self.constraint,
            mem=self.mem,
            dependency=dependency,
            exclusive=self.exclusive,
        )
        params.update({k: v for k, v in optional.items() if v})
        return params


def node_cpus(partition: str = "") -> int | None:
    """CPUs of the smallest node of ``partition`` (all partitions when empty) by ``sinfo``,
    or None where SLURM cannot say."""
    if shutil.which("sinfo") is None:
        return None
    command = ["sinfo", "-h", "-o", "%c", *(["-p", partition] if partition else [])]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    counts = [int(v.rstrip("+")) for v in out.split() if v.rstrip("+").isdigit()]
    return min(counts) if counts else None


def loader_cpus_per_task(
    workers: int, tasks_per_node: int, exclusive: bool, cpus_per_node: int | None
) -> int:
    """CPUs one rank needs: its loader workers plus its own process; with ``exclusive`` the
    node's CPUs shared by its tasks (when SLURM says how many there are)."""
    if exclusive and cpus_per_node:
        return max(1, cpus_per_node // max(1, tasks_per_node))
    return workers + 1


@dataclass
class Submission:
    """One job handed to SLURM (an array task counts as one)."""

    job_id: str
    kind: str  # train | eval
    output_dir: str
    stdout: Path
    stderr: Path


def require_slurm() -> None:
    """Fail clearly when this machine cannot submit to SLURM."""
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise SubmitError(
            "no SLURM here (sbatch/srun not on PATH). To train on this machine instead run "
            "`accelerate launch --config_file configs/accelerate/cpu_2proc.yaml -m scm_dist.cli_train "
            "--config <config>.yaml` (configs/accelerate/gpu_1node_8.yaml on 8 GPUs); for the local "
            "test cluster run `sudo make slurm-up` and the `export SLURM_CONF=...` it prints."
        )


def sbatch_script(folder: Path, params: dict[str, Any], array_size: int = 0) -> str:
    """The batch script submitit would submit for these parameters (for --dry-run).

    submitit has no public dry run: this wraps its private ``_make_sbatch_string`` (the
    function its SlurmExecutor submits with, so the script printed is the one that would
    run), pinned by the tested version in pyproject.toml and covered by
    tests/launch/test_submit_cli.py::test_dry_run_prints_the_batch_script_and_submits_nothing.
    """
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    params = {**params}
    if params.get("mem"):
        params["mem"] = str(params["mem"])
    map_count = array_size if array_size > 1 else None
    return _make_sbatch_string(command=command, folder=folder, map_count=map_count, **params)


def _executor(folder: Path, params: dict[str, Any]) -> SlurmExecutor:
    executor = SlurmExecutor(folder=folder)
    executor.update_parameters(**params)
    return executor


def _submit(executor: SlurmExecutor, jobs: list[Any]) -> list[submitit.Job]:
    try:
        if len(jobs) == 1:
            return [executor.submit(jobs[0])]
        with executor.batch():
            futures = [executor.submit(job) for job in jobs]
        return futures
    except (subprocess.CalledProcessError, FailedJobError) as err:
        raise SubmitError(f"sbatch refused the job: {_slurm_message(err)}") from err


def _slurm_message(err: Exception) -> str:
    output = getattr(err, "output", None) or getattr(err, "stderr", None)
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return (output or str(err)).strip()


def with_output_dir(cfg: ExperimentConfig, output_dir: Path) -> ExperimentConfig:
    cfg = copy.deepcopy(cfg)
    cfg.train.output_dir = str(output_dir)
    return cfg


def _without_eval(cfg: ExperimentConfig) -> ExperimentConfig:
    """Training config for a job followed by a dependent evaluation (no evaluation twice)."""
    cfg = copy.deepcopy(cfg)
    cfg.eval.after_train = False
    return cfg


def plan_configs(cfg: ExperimentConfig, sweep: list[SweepPoint] | None, load: Any) -> list[ExperimentConfig]:
    """One config per job: ``cfg`` itself, or one per sweep point in its own sub-directory.

    ``load(extra_overrides)`` rebuilds a config from the same file and overrides plus the
    sweep point's, so sweeps go through the same validation as the command line.
    """
    base = Path(cfg.train.output_dir).resolve()
    if not sweep:
        return [with_output_dir(cfg, base)]
    return [with_output_dir(load(point.overrides), base / point.tag) for point in sweep]


def log_folder(configs: list[ExperimentConfig], log_dir: Path | None = None) -> Path:
    """submitit's folder: ``<output_dir>/slurm/%j`` (the sweep's parent dir for arrays)."""
    out = Path(configs[0].train.output_dir)
    return (log_dir or (out if len(configs) == 1 else out.parent) / "slurm") / "%j"


def submit(
    configs: list[ExperimentConfig],
    train_res: Resources,
    *,
    eval_res: Resources | None = None,
    train_fn: TrainFn = app_train,
    eval_fn: EvalFn = app_evaluate,
    log_dir: Path | None = None,
) -> list[Submission]:
    """Submit training for each config (an array when several), then dependent evaluations."""
    require_slurm()
    folder = log_folder(configs, log_dir)
    executor = _executor(folder, train_res.sbatch_parameters(configs[0].name))
    train_cfgs = configs if eval_res is None else [_without_eval(c) for c in configs]
    train_jobs = _submit(executor, [TrainJob(c, train_fn) for c in train_cfgs])
    done = [
        Submission(j.job_id, "train", c.train.output_dir, j.paths.stdout, j.paths.stderr)
        for j, c in zip(train_jobs, configs)
    ]
    if eval_res is not None:
        for job, cfg in zip(train_jobs, configs):
            params = eval_res.sbatch_parameters(f"{cfg.name}-eval", f"afterok:{job.job_id}")
            (ev,) = _submit(_executor(folder, params), [EvalJob(cfg, eval_fn)])
            done.append(Submission(ev.job_id, "eval", cfg.train.output_dir, ev.paths.stdout, ev.paths.stderr))
    return done
