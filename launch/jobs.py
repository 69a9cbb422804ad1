"""What runs inside each SLURM task: training (then evaluation) or evaluation alone.

Both are ``submitit.helpers.Checkpointable`` so submitit keeps their pickled submission
for a requeued job; the state itself lives in the engine's checkpoints in
``cfg.train.output_dir``, so the requeued job simply calls the same function again and
the engine resumes from the latest checkpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable

from launch.distributed_env import TaskPlace, export_from_slurm
from launch.preemption import SignalWatch, requeue
from scm_dist.config import ExperimentConfig
from scm_dist.stop import StopFlag

TrainFn = Callable[[ExperimentConfig, StopFlag], dict]
EvalFn = Callable[[ExperimentConfig, Any], dict]


def app_train(cfg: ExperimentConfig, stop: StopFlag) -> dict:
    """scm_dist.app.train, imported on the compute node (the submit host needs no torch)."""
    from scm_dist.app import start_runtime, train

    runtime = start_runtime(cfg)
    try:
        return train(cfg, stop, runtime)
    finally:
        runtime.close()  # leave the process group before the interpreter exits (as the CLI does)


def app_evaluate(cfg: ExperimentConfig, checkpoint: Any) -> dict:
    """scm_dist.app.evaluate, imported on the compute node."""
    from scm_dist.app import evaluate, start_runtime

    runtime = start_runtime(cfg, training=False)
    try:
        return evaluate(cfg, checkpoint, runtime)
    finally:
        runtime.close()


def _log(place: TaskPlace, message: str) -> None:
    print(
        f"[scm-submit rank {place.rank}/{place.world_size} job {place.job_id}] {message}",
        file=sys.stderr,
        flush=True,
    )


class TrainJob(Checkpointable):
    """Train ``cfg`` on all tasks of the job (the app evaluates after when eval.after_train)."""

    def __init__(self, cfg: ExperimentConfig, train_fn: TrainFn = app_train) -> None:
        self.cfg = cfg
        self.train_fn = train_fn

    def __call__(self) -> dict:
        place = export_from_slurm()
        stop = StopFlag()
        watch = SignalWatch(stop)
        _log(
            place,
            f"training into {self.cfg.train.output_dir} (master {place.master_addr}:{place.master_port})",
        )
        result = self.train_fn(self.cfg, stop)
        if result.get("status") == "preempted":
            if place.rank == 0 and watch.should_requeue:
                requeue(place.job_id)
                _log(place, "checkpoint written, job requeued")
            else:
                _log(place, f"checkpoint written, exiting (signals: {watch.received or 'none'})")
            raise SystemExit(0)  # no result file: the requeued job writes it
        return result


class EvalJob(Checkpointable):
    """Evaluate the final model of ``cfg.train.output_dir`` (a job that runs after training)."""

    def __init__(self, cfg: ExperimentConfig, eval_fn: EvalFn = app_evaluate) -> None:
        self.cfg = cfg
        self.eval_fn = eval_fn

    def __call__(self) -> dict:
        place = export_from_slurm()
        from scm_dist.engine import FINAL_MODEL  # on the compute node: the submit host needs no torch

        model = Path(self.cfg.train.output_dir) / FINAL_MODEL
        _log(place, f"evaluating {model}")
        return self.eval_fn(self.cfg, model)
