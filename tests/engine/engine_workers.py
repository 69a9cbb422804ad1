"""Process entry points for the multi-process engine tests (imported by spawn).

Every job runs with :class:`CollectiveSpy` installed: a collective on a tensor off the
runtime's device, or one called from scm_dist around the runtime, fails the job; the
result carries the count of the runtime's collectives that ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from collective_spy import CollectiveSpy

from scm_dist.config import load_config
from scm_dist.stop import StopFlag


class StopAfterPolls(StopFlag):
    """The stop flag, raised by itself at the n-th poll (the loop polls once per step)."""

    def __init__(self, polls: int) -> None:
        super().__init__()
        self.remaining = polls

    def is_set(self) -> bool:
        self.remaining -= 1
        if self.remaining <= 0:
            self.set()
        return super().is_set()


def make_config(shards: str, output_dir: str, overrides: list[str]):
    base = [
        f"data.train_dir={shards}/train",
        f"data.val_dir={shards}/val",
        f"train.output_dir={output_dir}",
        "data.batch_size=8",
        "data.workers=0",
        "data.shuffle_buffer=64",
        "train.log_every=5",
        "model.depth=3",
        "train.checkpoint_every=1000",
        "eval.after_train=false",
        "optim.lr=2e-4",
        "optim.lr_scaling=none",
        "optim.warmup_epochs=0.5",
        "optim.schedule=cosine",
        "train.epochs=2",
    ]
    return load_config("configs/experiments/synthetic_scm.yaml", base + overrides)


def run_job(job: dict) -> dict:
    """Run ``job['kind']`` in this (launched) process; its JSON-able result, with the
    collectives scm_dist ran (``collectives``: ``runtime.py:<name>`` -> count)."""
    from scm_dist import app

    cfg = make_config(job["shards"], job["output_dir"], job["overrides"])
    runtime = app.start_runtime(cfg, training=job["kind"] != "evaluate")
    spy = CollectiveSpy(runtime.device).install()
    result = JOBS[job["kind"]](job, cfg, runtime)
    result = json.loads(json.dumps(result, default=str))
    result["collectives"] = dict(spy.from_scm_dist)
    return result


def _train(job: dict, cfg, runtime) -> dict:
    from scm_dist import app

    stop = StopAfterPolls(job["stop_after"]) if job.get("stop_after") else None
    return app.train(cfg, stop, runtime)


def _train_and_snapshot_live_model(job: dict, cfg, runtime) -> dict:
    """Train, then evaluate the live (DeepSpeed) model on fixed inputs on rank 0."""
    import deepspeed

    from scm_dist import app

    trainer = app.build_trainer(cfg, runtime)
    summary = trainer.run()
    module = trainer.backend.engine.module
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    with deepspeed.zero.GatheredParameters(list(module.parameters())):
        if runtime.is_main:
            module.eval()
            out = module(images.to(next(module.parameters()).dtype))
            params = {n: p.detach().clone() for n, p in module.named_parameters()}
            torch.save(
                {
                    "images": images,
                    "cams": out.cams.float(),
                    "logits": out.logits.float(),
                    "params": params,
                    "dtype": str(next(module.parameters()).dtype),
                },
                Path(job["output_dir"]) / "live_outputs.pt",
            )
    return summary


def _train_and_name_optimizer(job: dict, cfg, runtime) -> dict:
    """Train; the summary with the SCM scalars before training and the class and kernel
    flags of the AdamW that stepped."""
    from scm_dist import app

    trainer = app.build_trainer(cfg, runtime)
    before = trainer.backend.scalar_parameters()
    summary = trainer.run()
    summary["scalars_before"] = before
    optimizer = trainer.backend.optimizer
    while not isinstance(optimizer, torch.optim.Optimizer) or hasattr(optimizer, "optimizer"):
        optimizer = optimizer.optimizer  # Accelerate's and ZeRO's wrappers hold the real one
    defaults = optimizer.defaults
    summary["optimizer"] = {
        "class": type(optimizer).__name__,
        "foreach": defaults.get("foreach"),
        "fused": defaults.get("fused"),
    }
    return summary


def _evaluate(job: dict, cfg, runtime) -> dict:
    from scm_dist import app

    return app.evaluate(cfg, job["checkpoint"], runtime)


def _collectives(job: dict, cfg, runtime) -> dict:
    """Each collective of the runtime once, and the stop vote raised by rank 1 at poll 3."""
    world, rank = runtime.world_size, runtime.rank
    vote = runtime.vote()
    polls = [vote.poll(rank == 1 and step == 3) for step in range(6)]
    runtime.barrier()
    return {
        "sum": runtime.sum(torch.tensor([rank + 1.0])).item(),
        "max": runtime.max(torch.tensor([float(rank)])).item(),
        "flag_from_last": runtime.broadcast_flag(rank == world - 1, src=world - 1),
        "flag_from_first": runtime.broadcast_flag(rank == world - 1),
        "polls": polls,
        "after_close": vote.close(),
        "distributed": runtime.distributed,
        "world_size": world,
    }


def _train_then_close(job: dict, cfg, runtime) -> dict:
    """Train (as scm-train does), close the runtime: the native threads left in this
    process. gloo's loops still running would mean the group outlived
    ``destroy_process_group`` (and may abort the interpreter's exit)."""
    import gc
    import os
    import time

    from scm_dist import app

    summary = app.train(cfg, None, runtime)
    runtime.close()
    gc.collect()
    time.sleep(0.2)
    tasks = Path("/proc/self/task")
    summary["threads"] = sorted((tasks / t / "comm").read_text().strip() for t in os.listdir(tasks))
    return summary


JOBS = {
    "train": _train,
    "train_snapshot": _train_and_snapshot_live_model,
    "train_optimizer": _train_and_name_optimizer,
    "evaluate": _evaluate,
    "collectives": _collectives,
    "train_then_close": _train_then_close,
}
