"""Process entry points for the multi-process engine tests (imported by spawn)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from scm_dist.config import load_config


class StopAfterPolls:
    """A StopRequest that becomes set at the n-th poll (the loop polls once per step)."""

    def __init__(self, polls: int) -> None:
        self.remaining = polls

    def set(self) -> None:
        self.remaining = 0

    def is_set(self) -> bool:
        self.remaining -= 1
        return self.remaining <= 0


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
    """Run ``job['kind']`` in this (launched) process and return its JSON-able result."""
    return json.loads(json.dumps(JOBS[job["kind"]](job), default=str))


def _train(job: dict) -> dict:
    from scm_dist.engine import Trainer

    cfg = make_config(job["shards"], job["output_dir"], job["overrides"])
    stop = StopAfterPolls(job["stop_after"]) if job.get("stop_after") else None
    trainer = Trainer(cfg, stop)
    return trainer.run()


def _train_and_snapshot_live_model(job: dict) -> dict:
    """Train, then evaluate the live (DeepSpeed) model on fixed inputs on rank 0."""
    import deepspeed

    from scm_dist.engine import Trainer

    cfg = make_config(job["shards"], job["output_dir"], job["overrides"])
    trainer = Trainer(cfg)
    summary = trainer.run()
    module = trainer.backend.engine.module
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    with deepspeed.zero.GatheredParameters(list(module.parameters())):
        if trainer.backend.is_main:
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


def _evaluate(job: dict) -> dict:
    from scm_dist.evaluation.run import evaluate

    cfg = make_config(job["shards"], job["output_dir"], job["overrides"])
    return evaluate(cfg, job["checkpoint"])


JOBS = {"train": _train, "train_snapshot": _train_and_snapshot_live_model, "evaluate": _evaluate}
