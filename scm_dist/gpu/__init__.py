"""The prepared GPU check: ``python -m scm_dist.bench gpu [--quick] [--json] [--out FILE]``.

One short run on one GPU (plan: at most 8 minutes on an H100) that measures the GPU path
and finds what CPU tests cannot. Steps, in order, each in its own try/except (an error
is recorded in the JSON and the next step runs), the JSON file rewritten after each step
so that a timeout still leaves the finished parts:

1. ``environment``: versions (Python, torch, CUDA, NCCL, torchvision, timm, accelerate,
   deepspeed, webdataset, ...), the device, CPU cores; FFCV is not used (skipped, said so).
2. ``correctness`` (fp32, TF32 off): fused vs naive attention and fast vs literal SCM,
   logits and gradients; bf16 autocast vs fp32; SCM precision (fp32 / tf32) against
   float64 (:func:`scm_dist.models.scm_precision.precision_report`).
3. ``train_step``: deit_scm_small and deit_tscam_small at 224 px, bf16 autocast, batch 256
   (halved until it fits), fused AdamW, uint8 input normalised on the device: images/s
   eager, compiled (torch.compile, graph breaks counted) and the naive path (eager), MFU
   (FLOPs counted by ``torch.utils.flop_counter`` over one train step, peak = this GPU's
   measured bf16 matmul rate, measured here), peak memory.
4. ``engine``: the real ``scm-train`` CLI under ``torchrun`` with one process (NCCL on
   CUDA, gloo on CPU) on a small synthetic shard set: Accelerate DDP bf16 and DeepSpeed
   ZeRO-2 bf16, each trained, checkpointed, resumed in a second launch, evaluated after;
   Accelerate with ``data.decode=gpu`` trained and resumed.
5. ``loader``: feed rate on this machine's cores at ImageNet-like JPEG sizes: the
   WebDataset loader with CPU decode (one worker per core) and with ``data.decode=gpu``
   (:mod:`scm_dist.data.device_input`), each batch made the model's input on the device,
   beside the train step's images/s.
6. ``eval``: ``scm-eval``'s evaluation (both protocols) images/s on the device.
7. ``scm_tf32``: the SCM train step with ``model.scm_precision=tf32`` (eager and compiled)
   against step 3's fp32, in whatever time the steps before left.

``--quick`` runs every step on the CPU with tiny sizes (CI keeps the script alive; the
compiled variant then uses the ``aot_eager`` backend, inductor is covered by
tests/models/test_compile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .common import FULL, QUICK, Check
from .correctness import step_correctness, step_environment
from .engine_run import step_engine
from .feed import step_eval, step_loader
from .train_step import step_scm_tf32, step_train

# seconds a step needs at least (full mode); a step is skipped when less is left
STEP_NEEDS = {
    "environment": 0,
    "correctness": 20,
    "train_step": 90,
    "engine": 60,
    "loader": 30,
    "eval": 15,
    "scm_tf32": 60,
}


STEPS: list[tuple[str, Callable[[Check], dict[str, Any]]]] = [
    ("environment", step_environment),
    ("correctness", step_correctness),
    ("train_step", step_train),
    ("engine", step_engine),
    ("loader", step_loader),
    ("eval", step_eval),
    ("scm_tf32", step_scm_tf32),  # last: only in the time the required figures left
]


def _write(report: dict[str, Any], path: Path) -> None:
    """Atomically replace ``path`` with the report so far."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp, path)


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every step on CPU, tiny sizes (CI)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON written as it goes")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="stop starting steps after this many seconds (default 450; --quick: 1800, for loaded CI hosts)",
    )
    parser.add_argument("--steps", default=",".join(name for name, _ in STEPS), help="comma-separated subset")
    opts = parser.parse_args(argv)
    wanted = opts.steps.split(",")
    unknown = sorted(set(wanted) - {name for name, _ in STEPS})
    if unknown:
        parser.error(f"unknown steps {unknown}; choose from {[name for name, _ in STEPS]}")
    cuda = torch.cuda.is_available() and not opts.quick
    budget = opts.budget_s if opts.budget_s is not None else (1800.0 if opts.quick else 450.0)
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    check = Check(
        sizes=QUICK if opts.quick else FULL,
        device=torch.device("cuda" if cuda else "cpu"),
        workdir=workdir,
        deadline=time.monotonic() + budget,
        quick=opts.quick,
    )
    report: dict[str, Any] = {"check": "gpu", "quick": opts.quick, "budget_s": budget, "steps": {}}
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        for name, step in STEPS:
            if name not in wanted:
                continue
            if not opts.quick and check.left() < STEP_NEEDS[name]:
                report["steps"][name] = {"skipped": f"time budget ({check.left():.0f} s left)"}
                _write(report, opts.out)
                continue
            started = time.perf_counter()
            print(f"[gpu check] {name} ...", file=sys.stderr, flush=True)
            try:
                result = step(check)
            except Exception as err:  # noqa: BLE001  (recorded; the next step runs)
                result = {
                    "error": f"{type(err).__name__}: {err}"[:2000],
                    "traceback": traceback.format_exc()[-3000:],
                }
            result["step_seconds"] = round(time.perf_counter() - started, 1)
            report["steps"][name] = result
            _write(report, opts.out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["errors"] = sorted(
        name
        for name, result in report["steps"].items()
        if "error" in result or any(isinstance(v, dict) and "error" in v for v in result.values())
    )
    _write(report, opts.out)
    return report
