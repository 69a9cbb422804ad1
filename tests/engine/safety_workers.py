"""Process entry points for the resume-safety tests (imported by spawn)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from engine_workers import make_config


class Payload:
    """A pickle that runs a shell command when unpickled with weights_only=False."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _trainer(cfg):
    """The run's trainer on this process's runtime (as the application layer builds it)."""
    from scm_dist.app import build_trainer, start_runtime

    return build_trainer(cfg, start_runtime(cfg))


def plant(path: Path, marker: Path) -> None:
    """Replace ``path`` by the payload and record its new size in complete.json, as an
    attacker who can write the checkpoint folder would."""
    torch.save({"state": Payload(marker)}, path)
    for parent in path.parents:
        record = parent / "complete.json"
        if record.is_file():
            files = json.loads(record.read_text())
            files["files"][str(path.relative_to(parent))] = path.stat().st_size
            record.write_text(json.dumps(files))
            return


def resume_from_planted_files(job: dict) -> dict:
    """Train a few steps, then for every .pt file of the checkpoint: copy the run, plant the
    payload in that file, resume. Returns {file: error message} and the markers written."""
    from scm_dist.engine import ResumeError

    base = Path(job["output_dir"]) / "base"
    cfg = make_config(job["shards"], str(base), job["overrides"] + ["train.max_steps=2"])
    _trainer(cfg).run()
    checkpoint = base / "checkpoints" / "step_00000002"
    errors: dict[str, str] = {}
    for index, path in enumerate(sorted(checkpoint.rglob("*.pt"))):
        rel = str(path.relative_to(checkpoint))
        out = Path(job["output_dir"]) / f"planted{index}"
        shutil.copytree(base, out)
        marker = out / "PWNED"
        plant(out / "checkpoints" / "step_00000002" / rel, marker)
        cfg = make_config(job["shards"], str(out), job["overrides"] + ["train.max_steps=4"])
        try:
            _trainer(cfg).run()
            errors[rel] = "resumed without reading it"
        except ResumeError as err:
            errors[rel] = str(err)
        if marker.exists():
            errors[rel] = "PAYLOAD RAN: " + errors[rel]
    return {"errors": errors}


def hold_lock(directory: str, seconds: float, ready: str) -> None:
    """Hold the run lock on ``directory`` for ``seconds`` (a second writer's stand-in)."""
    from scm_dist.engine.run_lock import RunLock

    lock = RunLock(directory)
    lock.acquire()
    Path(ready).write_text(str(os.getpid()))
    time.sleep(seconds)
    lock.release()


def train_argv(shards: Path, out: Path, *extra: str) -> list[str]:
    """scm-train arguments for a 2-step run on the synthetic shards."""
    cfg = make_config(str(shards), str(out), [])
    return [
        "--config",
        "configs/experiments/synthetic_scm.yaml",
        f"data.train_dir={cfg.data.train_dir}",
        f"data.val_dir={cfg.data.val_dir}",
        f"train.output_dir={out}",
        "data.workers=0",
        "data.batch_size=8",
        "model.depth=3",
        "train.max_steps=2",
        "eval.after_train=false",
        *extra,
    ]
