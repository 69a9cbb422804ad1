"""Process entry point of the remote training test (imported by spawn): train the small
synthetic SCM model as configured, with the train / val split at ``job['data']``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def train_job(job: dict) -> dict:
    from scm_dist import app
    from scm_dist.config import load_config

    overrides = [
        f"data.train_dir={job['data']}/train",
        f"data.val_dir={job['data']}/val",
        f"train.output_dir={job['output_dir']}",
        "data.batch_size=8",
        "data.workers=1",
        "data.shuffle_buffer=16",
        "data.remote_backoff_s=0.05",
        "model.depth=2",
        "train.max_steps=6",
        "train.log_every=1",
        "train.checkpoint_every=1000",
        "eval.after_train=false",
        "optim.lr_scaling=none",
    ]
    summary = app.train(load_config(str(REPO / "configs/experiments/synthetic_scm.yaml"), overrides))
    return {"status": summary["status"], "step": summary["step"]}
