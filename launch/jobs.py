"""What runs inside each SLURM task: training (then evaluation) or evaluation alone.

Both are ``submitit.helpers.Checkpointable`` so submitit keeps their pickled submission
for a requeued job; the state itself lives in the engine's checkpoints in
``cfg.train.output_dir``, so the requeued job simply calls the same function again and
the engine resumes from the latest checkpoint.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable

from launch import distributed_env
from launch.preemption import SignalWatch, requeue
from scm_dist.config import ExperimentConfig

TrainFn = Callable[..., dict]
EvalFn = Callable[[ExperimentConfig, Any], dict]


def engine_train(cfg: ExperimentConfig, stop: Any) -> dict:
    """scm_dist.engine.train, imported on the compute node (the submit host needs no torch)."""
    from scm_dist.engine import train

    return train(cfg, stop)


def engine_evaluate(cfg: ExperimentConfig, checkpoint: Any) -> dict:
    """scm_dist.evaluation.run.evaluate, imported on the compute node."""
    from scm_dist.evaluation.run import evaluate

    return evaluate(cfg, checkpoint)


def _start(env: distributed_env.DistributedEnv) -> None:
    """Export the ranks and show the engine's INFO logs on rank 0, warnings elsewhere."""
    distributed_env.export(env)
    logging.basicConfig(
        level=logging.INFO if env.rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {env.rank}] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _log(env: distributed_env.DistributedEnv, message: str) -> None:
    print(
        f"[scm-submit rank {env.rank}/{env.world_size} job {env.job_id}] {message}",
        file=sys.stderr,
        flush=True,
    )


class TrainJob(Checkpointable):
    """Train ``cfg`` on all tasks of the job (the engine evaluates after when eval.after_train)."""

    def __init__(self, cfg: ExperimentConfig, train_fn: TrainFn = engine_train) -> None:
        self.cfg = cfg
        self.train_fn = train_fn

    def __call__(self) -> dict:
        env = distributed_env.from_slurm()
        _start(env)
        stop = threading.Event()  # the engine's StopRequest interface: set() / is_set()
        watch = SignalWatch(stop)
        _log(env, f"training into {self.cfg.train.output_dir} (master {env.master_addr}:{env.master_port})")
        result = self.train_fn(self.cfg, stop)
        if result.get("status") == "preempted":
            if env.rank == 0 and watch.should_requeue:
                requeue(env.job_id)
                _log(env, "checkpoint written, job requeued")
            else:
                _log(env, f"checkpoint written, exiting (signals: {watch.received or 'none'})")
            raise SystemExit(0)  # no result file: the requeued job writes it
        return result


class EvalJob(Checkpointable):
    """Evaluate the final model of ``cfg.train.output_dir`` (a job that runs after training)."""

    def __init__(self, cfg: ExperimentConfig, eval_fn: EvalFn = engine_evaluate) -> None:
        self.cfg = cfg
        self.eval_fn = eval_fn

    def __call__(self) -> dict:
        env = distributed_env.from_slurm()
        _start(env)
        from scm_dist.engine import FINAL_MODEL

        model = Path(self.cfg.train.output_dir) / FINAL_MODEL
        _log(env, f"evaluating {model}")
        return self.eval_fn(self.cfg, model)
