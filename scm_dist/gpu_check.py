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
   ZeRO-2 bf16, each trained, checkpointed, resumed in a second launch, evaluated after.
5. ``loader``: feed rate on this machine's cores at ImageNet-like JPEG sizes: the
   WebDataset loader (CPU decode, one worker per core) and the GPU decode path
   (:mod:`scm_dist.data.device_input`), beside the train step's images/s.
6. ``eval``: ``scm-eval``'s evaluation (both protocols) images/s on the device.
7. ``scm_tf32``: the SCM train step with ``model.scm_precision=tf32`` (eager and compiled)
   against step 3's fp32, in whatever time the steps before left.

``--quick`` runs every step on the CPU with tiny sizes (CI keeps the script alive; the
compiled variant then uses the ``aot_eager`` backend, inductor is covered by
tests/models/test_compile.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
BASE_CONFIG = REPO / "configs" / "experiments" / "synthetic_scm.yaml"
ZERO2 = REPO / "configs" / "deepspeed" / "zero2.json"
PACKAGES = ("torch", "torchvision", "timm", "accelerate", "deepspeed", "webdataset", "numba", "cv2", "numpy")


@dataclass(frozen=True)
class Sizes:
    """Everything the two modes size differently."""

    size: str  # model size: small | tiny
    depth: int  # 0: the model's own (12)
    img: int
    batch: int
    warmup: int
    timed: int
    compile_backend: str
    matmul: int  # side of the square bf16 matmul that measures the peak
    correctness_batch: int
    engine_images: tuple[int, int]  # synthetic train, val
    engine_img: int
    engine_batch: int
    engine_steps: int  # per launch (trained, then resumed for as many more)
    loader_images: int
    loader_batch: int
    loader_workers: int


FULL = Sizes(
    size="small",
    depth=0,
    img=224,
    batch=256,
    warmup=3,
    timed=10,
    compile_backend="inductor",
    matmul=8192,
    correctness_batch=4,
    engine_images=(1024, 1024),
    engine_img=224,
    engine_batch=64,
    engine_steps=4,
    loader_images=4096,
    loader_batch=256,
    loader_workers=os.cpu_count() or 1,
)
QUICK = Sizes(
    size="tiny",
    depth=1,
    img=32,
    batch=4,
    warmup=1,
    timed=2,
    compile_backend="aot_eager",
    matmul=256,
    correctness_batch=2,
    engine_images=(64, 16),
    engine_img=32,
    engine_batch=8,
    engine_steps=2,
    loader_images=16,
    loader_batch=8,
    loader_workers=1,
)
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


@dataclass
class Check:
    """State shared by the steps."""

    sizes: Sizes
    device: torch.device
    workdir: Path
    deadline: float
    quick: bool
    results: dict[str, Any] = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


# -- 1. environment ----------------------------------------------------------------------
def step_environment(check: Check) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
            versions[name] = getattr(module, "__version__", "?")
        except Exception as err:  # noqa: BLE001  (absent or broken: recorded, not fatal)
            versions[name] = f"missing ({type(err).__name__}: {err})"
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "versions": versions,
        "cpu_count": os.cpu_count(),
        "device": str(check.device),
        "ffcv": "skipped: the FFCV loader is not measured by this check (native libraries)",
    }
    if check.device.type == "cuda":
        props = torch.cuda.get_device_properties(check.device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            nccl=".".join(map(str, torch.cuda.nccl.version())),
            cudnn=torch.backends.cudnn.version(),
        )
    return info


# -- 2. correctness ------------------------------------------------------------------------
def _model(name: str, sizes: Sizes, num_classes: int = 1000, **kwargs) -> torch.nn.Module:
    from scm_dist.models import create_wsol_model

    extra = {"depth": sizes.depth} if sizes.depth else {}
    return create_wsol_model(
        f"deit_{name}_{sizes.size}_patch16_224",
        num_classes=num_classes,
        img_size=sizes.img,
        **extra,
        **kwargs,
    )


def _logits_and_grads(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, bf16: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(images)
    F.cross_entropy(logits.float(), labels).backward()
    grads = {n: p.grad.detach().float() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach().float(), grads


def _differences(
    a: tuple[torch.Tensor, dict[str, torch.Tensor]], b: tuple[torch.Tensor, dict[str, torch.Tensor]]
) -> dict[str, Any]:
    """Max |a - b| / max |b| of the logits; ||a - b|| / ||b|| over all gradients together,
    and the worst parameter by ||a_p - b_p|| / ||b|| (so that a parameter whose gradient is
    rounding noise, such as a key bias, does not dominate)."""
    logits = float((a[0] - b[0]).abs().max() / b[0].abs().max().clamp_min(1e-30))
    scale = torch.sqrt(sum(g.pow(2).sum() for g in b[1].values())).clamp_min(1e-30)
    per_param = {name: float((g - b[1][name]).norm() / scale) for name, g in a[1].items()}
    total = float(torch.sqrt(sum((g - b[1][name]).pow(2).sum() for name, g in a[1].items())) / scale)
    worst = max(per_param, key=per_param.get)
    return {"logits": logits, "grads": total, "grads_worst_param": worst, "grads_worst": per_param[worst]}


@contextlib.contextmanager
def _full_fp32() -> Any:
    """No TF32 in matmuls or convolutions (CUDA), restored after."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def step_correctness(check: Check) -> dict[str, Any]:
    from scm_dist.models.scm_precision import precision_report

    sizes, device = check.sizes, check.device
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(sizes.correctness_batch, 3, sizes.img, sizes.img, generator=gen).to(device)
    labels = torch.randint(0, 1000, (sizes.correctness_batch,), generator=gen).to(device)
    paths = {
        "efficient": dict(attn_impl="fused", scm_impl="fast"),
        "naive_attention": dict(attn_impl="naive", scm_impl="fast"),
        "literal_scm": dict(attn_impl="fused", scm_impl="literal"),
    }
    runs = {}
    with _full_fp32():
        for path, kwargs in paths.items():
            torch.manual_seed(0)
            model = _model("scm", sizes, **kwargs).to(device).train()
            runs[path] = _logits_and_grads(model, images, labels, bf16=False)
            if path == "efficient":
                runs["bf16"] = _logits_and_grads(model, images, labels, bf16=True)
        del model
    return {
        "batch": sizes.correctness_batch,
        "model": f"deit_scm_{sizes.size}",
        "fused_vs_naive_attention": _differences(runs["efficient"], runs["naive_attention"]),
        "fast_vs_literal_scm": _differences(runs["efficient"], runs["literal_scm"]),
        "bf16_autocast_vs_fp32": _differences(runs["bf16"], runs["efficient"]),
        "scm_precision": (
            precision_report(device, batch=2, classes=16, grid=6) if check.quick else precision_report(device)
        ),
    }


# -- 3. train step ------------------------------------------------------------------------
def measure_matmul_peak(device: torch.device, side: int, repeats: int = 20) -> float:
    """FLOP/s of a square bf16 matmul of ``side`` on ``device`` (the MFU denominator)."""
    a = torch.randn(side, side, device=device, dtype=torch.bfloat16)
    b = torch.randn(side, side, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * side**3 * repeats / (time.perf_counter() - start)


class TrainStep:
    """One model's train step: uint8 batch normalised on the device, bf16 autocast (on
    GPU; fp32 on CPU), cross-entropy, backward, fused AdamW."""

    def __init__(
        self, model: torch.nn.Module, batch: int, img: int, device: torch.device, compiled: str
    ) -> None:
        from scm_dist.engine.optim import param_groups
        from scm_dist.optim_build import build_adamw

        self.model = model.to(device).train()
        self.optimizer = build_adamw(param_groups(self.model, 0.05), lr=1e-4)
        self.run = torch.compile(self.model, backend=compiled) if compiled else self.model
        self.images = torch.randint(0, 256, (batch, 3, img, img), dtype=torch.uint8, device=device)
        self.labels = torch.randint(0, 1000, (batch,), device=device)
        self.bf16 = device.type == "cuda"

    def __call__(self) -> None:
        from scm_dist.data.device_input import normalize

        with torch.autocast(self.images.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.run(normalize(self.images))
        F.cross_entropy(logits.float(), self.labels).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def _count_flops(step: TrainStep) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def _time_variant(check: Check, make: Callable[[int], TrainStep], batch: int) -> dict[str, Any]:
    """Images/s and peak memory of one variant, halving the batch until it fits."""
    while True:
        try:
            step = make(batch)
            started = time.perf_counter()
            for _ in range(check.sizes.warmup):
                step()
            check.sync()
            warmup_s = time.perf_counter() - started
            if check.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(check.device)
            times = []
            for _ in range(check.sizes.timed):
                started = time.perf_counter()
                step()
                check.sync()
                times.append(time.perf_counter() - started)
            step_s = statistics.median(times)
            result = {
                "batch": batch,
                "images_per_s": round(batch / step_s, 1),
                "step_ms": round(step_s * 1000, 2),
                "warmup_s": round(warmup_s, 1),
            }
            if check.device.type == "cuda":
                result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(check.device) / 2**30, 2)
            return result
        except torch.cuda.OutOfMemoryError:
            step = None
            torch.cuda.empty_cache()
            if batch <= 8:
                raise
            batch //= 2


def _graph_breaks() -> dict[str, Any]:
    from torch._dynamo.utils import counters

    breaks = counters.get("graph_break", {})
    return {"count": int(sum(breaks.values())), "reasons": [str(reason)[:300] for reason in breaks][:10]}


def _run_variants(
    check: Check,
    family: str,
    variants: list[tuple[str, dict[str, Any], str]],
    batch: int,
    peak: float,
    flops_per_image: float | None = None,
) -> dict[str, Any]:
    """Time each ``(name, model kwargs, compile backend)`` variant of one model family; the
    first variant sets the batch that fits and, unless given, the FLOPs per image."""
    sizes, device = check.sizes, check.device
    result: dict[str, Any] = {}
    if flops_per_image:
        result["flops_per_image"] = flops_per_image
    for variant, kwargs, backend in variants:
        if check.left() < 20:
            result[variant] = {"skipped": "time budget"}
            continue
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        try:

            def make(b: int, kwargs=kwargs, backend=backend) -> TrainStep:
                torch.manual_seed(0)
                return TrainStep(_model(family, sizes, **kwargs), b, sizes.img, device, backend)

            result[variant] = _time_variant(check, make, batch)
            batch = result[variant]["batch"]  # the next variants at the batch that fitted
            if "flops_per_image" not in result:
                result["flops_per_image"] = round(_count_flops(make(batch)) / batch / 1e9, 2)
            if backend:
                result[variant]["graph_breaks"] = _graph_breaks()
            result[variant]["mfu"] = round(
                result[variant]["images_per_s"] * result["flops_per_image"] * 1e9 / peak, 4
            )
        except Exception as err:  # noqa: BLE001
            result[variant] = {"error": f"{type(err).__name__}: {err}"[:2000]}
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return result


def _speed(result: dict[str, Any], variant: str) -> float | None:
    return result.get(variant, {}).get("images_per_s")


def step_train(check: Check) -> dict[str, Any]:
    sizes, device = check.sizes, check.device
    peak = measure_matmul_peak(device, sizes.matmul)
    check.results["peak"] = peak
    out: dict[str, Any] = {
        "img_size": sizes.img,
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32 (CPU)",
        "optimizer": "AdamW fused" if device.type == "cuda" else "AdamW foreach",
        "peak_bf16_matmul_tflops": round(peak / 1e12, 1),
        "compile_backend": sizes.compile_backend,
    }
    variants = [
        ("eager", {}, ""),
        ("compiled", {}, sizes.compile_backend),
        ("naive", dict(attn_impl="naive", scm_impl="literal"), ""),
    ]
    for family in ("scm", "tscam"):
        result = _run_variants(check, family, variants, sizes.batch, peak)
        if _speed(result, "eager") and _speed(result, "naive"):
            result["efficient_over_naive"] = round(_speed(result, "eager") / _speed(result, "naive"), 3)
        out[f"deit_{family}_{sizes.size}"] = result
    scm, tscam = out[f"deit_scm_{sizes.size}"], out[f"deit_tscam_{sizes.size}"]
    for variant in ("eager", "compiled"):
        if _speed(scm, variant) and _speed(tscam, variant):
            out[f"scm_cost_over_tscam_{variant}"] = round(
                _speed(tscam, variant) / _speed(scm, variant) - 1, 3
            )
    check.results["scm_train"] = scm
    check.results["train_images_per_s"] = _speed(scm, "compiled") or _speed(scm, "eager")
    return out


def step_scm_tf32(check: Check) -> dict[str, Any]:
    """The SCM train step with ``model.scm_precision=tf32`` (the speed side of the TF32
    decision; the precision side is in the correctness step), beside fp32's."""
    fp32 = check.results.get("scm_train", {})
    batch = next((fp32[v]["batch"] for v in ("eager", "compiled") if "batch" in fp32.get(v, {})), None)
    peak = check.results.get("peak") or measure_matmul_peak(check.device, check.sizes.matmul)
    tf32 = dict(scm_precision="tf32")
    result = _run_variants(
        check,
        "scm",
        [("eager_tf32", tf32, ""), ("compiled_tf32", tf32, check.sizes.compile_backend)],
        batch or check.sizes.batch,
        peak,
        fp32.get("flops_per_image"),
    )
    for variant in ("eager", "compiled"):
        if _speed(result, f"{variant}_tf32") and _speed(fp32, variant):
            result[f"tf32_over_fp32_{variant}"] = round(
                _speed(result, f"{variant}_tf32") / _speed(fp32, variant), 3
            )
    return result


# -- 4. engine ----------------------------------------------------------------------------
def _synthetic_shards(check: Check, root: Path, image_size: int) -> Path:
    """WebDataset-only synthetic train/val splits (data_shards' generator)."""
    from data_shards.convert import ConvertOptions, convert_listing
    from data_shards.schema import FORMAT_WEBDATASET
    from data_shards.sources.synthetic import GENERATOR_VERSION, describe_baseline, list_synthetic

    workers = max(1, min(8, os.cpu_count() or 1))
    for split, count in zip(("train", "val"), check.sizes.engine_images):
        listing = list_synthetic(split, count, 10, image_size, 3, 90, workers)
        options = ConvertOptions(
            formats=(FORMAT_WEBDATASET,), shard_size_mb=2.0, workers=workers, shuffle=split == "train"
        )
        convert_listing(
            listing, root, options, {"generator_version": GENERATOR_VERSION} | describe_baseline(listing)
        )
    return root


def _subprocess_env(check: Check) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env["DS_ACCELERATOR"] = "cuda" if check.device.type == "cuda" else "cpu"
    env.setdefault("OMP_NUM_THREADS", "1" if check.quick else str(max(1, (os.cpu_count() or 2) // 2)))
    return env


def _last_json(text: str) -> dict[str, Any] | None:
    """The last top-level JSON object printed on its own lines (the CLI's summary)."""
    lines = text.splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads("\n".join(lines[start:]))
    return None


def _train_cli(check: Check, overrides: list[str], timeout: float) -> dict[str, Any]:
    """``scm-train`` under torchrun, one process; what it printed and how it ended."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "-m",
        "scm_dist.cli_train",
        "--config",
        str(BASE_CONFIG),
        *overrides,
    ]
    started = time.perf_counter()
    # own session: on a timeout the whole tree goes (torchrun's workers too, not only torchrun)
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=_subprocess_env(check),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return {"error": f"timed out after {timeout:.0f} s", "stderr_tail": stderr[-3000:]}
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    result: dict[str, Any] = {
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
    }
    summary = _last_json(done.stdout)
    if summary is not None:
        result["summary"] = {
            k: summary[k] for k in ("status", "step", "epoch", "final_model") if k in summary
        }
        if isinstance(summary.get("eval"), dict):
            result["eval"] = {k: v for k, v in summary["eval"].items() if not isinstance(v, (dict, list))}
    result["resumed"] = "resumed from" in done.stderr
    if done.returncode != 0 or summary is None:
        result["stderr_tail"] = done.stderr[-3000:]
    return result


def _metrics_rate(output_dir: Path) -> float | None:
    """The last logged train/images_per_s (rank 0's metrics.jsonl), if any."""
    path = output_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    rates = [
        json.loads(line).get("train/images_per_s") for line in path.read_text().splitlines() if line.strip()
    ]
    rates = [r for r in rates if r]
    return round(rates[-1], 1) if rates else None


def _engine_overrides(check: Check, shards: Path, engine: str, output_dir: Path) -> list[str]:
    sizes = check.sizes
    img = sizes.engine_img
    model = f"deit_scm_{'small' if img >= 224 else 'tiny'}_patch16_224"
    overrides = [
        f"model.name={model}",
        f"model.img_size={img}",
        "model.drop_path_rate=0.0",
        f"data.train_dir={shards / 'train'}",
        f"data.val_dir={shards / 'val'}",
        "data.format=webdataset",
        f"data.resize_size={img * 256 // 224}",
        f"data.crop_size={img}",
        f"data.eval_size={img}",
        f"data.batch_size={sizes.engine_batch}",
        f"data.eval_batch_size={sizes.engine_batch}",
        f"data.workers={min(4, sizes.loader_workers)}",
        "data.shuffle_buffer=100",
        "optim.warmup_epochs=0",
        f"train.engine={engine}",
        "train.precision=bf16",
        f"train.deepspeed_config={ZERO2}",
        f"train.checkpoint_every={sizes.engine_steps}",
        "train.log_every=1",
        f"train.output_dir={output_dir}",
        "eval.num_pictures=2",
    ]
    if sizes.depth:
        overrides.append(f"model.depth={sizes.depth}")
    return overrides


def step_engine(check: Check) -> dict[str, Any]:
    sizes = check.sizes
    shards = _synthetic_shards(check, check.workdir / "synthetic", sizes.engine_img)
    out: dict[str, Any] = {
        "launcher": "torchrun --standalone --nproc_per_node 1 -m scm_dist.cli_train",
        "process_group": "nccl" if check.device.type == "cuda" else "gloo",
        "images": dict(zip(("train", "val"), sizes.engine_images)),
        "img_size": sizes.engine_img,
        "batch": sizes.engine_batch,
    }
    for engine in ("accelerate", "deepspeed"):
        name = "accelerate_ddp_bf16" if engine == "accelerate" else "deepspeed_zero2_bf16"
        output_dir = check.workdir / "runs" / engine
        base = _engine_overrides(check, shards, engine, output_dir)
        runs: dict[str, Any] = {}
        # quick: the evaluation after training once (Accelerate), it is the same code
        evaluate = not check.quick or engine == "accelerate"
        for phase, steps, extra in (
            ("train", sizes.engine_steps, ["eval.after_train=false"]),
            ("resume_and_eval", 2 * sizes.engine_steps, [f"eval.after_train={str(evaluate).lower()}"]),
        ):
            if check.left() < 15:
                runs[phase] = {"skipped": "time budget"}
                break
            runs[phase] = _train_cli(check, [*base, f"train.max_steps={steps}", *extra], check.left() - 5)
            if runs[phase].get("returncode") != 0:
                break
        runs["images_per_s"] = _metrics_rate(output_dir)
        second = runs.get("resume_and_eval", {})
        runs["ok"] = bool(
            runs.get("train", {}).get("summary", {}).get("status") == "completed"
            and second.get("summary", {}).get("status") == "completed"
            and second.get("summary", {}).get("step") == 2 * sizes.engine_steps
            and second.get("resumed")
            and ("eval" in second or not evaluate)
        )
        out[name] = runs
    final = check.workdir / "runs" / "accelerate" / "model_final.pt"
    if final.is_file():
        check.results["eval_checkpoint"] = final
        check.results["eval_overrides"] = _engine_overrides(
            check, shards, "accelerate", check.workdir / "eval"
        )
    return out


# -- 5. loader ----------------------------------------------------------------------------
DISTINCT_IMAGES = 256  # generated photo-like JPEGs; larger sets repeat them under new names


def _imagenet_like_folder(root: Path, count: int, classes: int = 10) -> int:
    """``count`` JPEGs (q90) at the real sizes of the first ImageNet val images, photo-like
    (the loader benchmark's generator), in ``classes`` folders; returns their total bytes."""
    from data_shards.images import encode_jpeg
    from scm_dist.data.benchmark import SIZES_FILE, _photo_like, _real_sizes

    rng = np.random.default_rng(0)
    sizes = _real_sizes(SIZES_FILE, min(count, DISTINCT_IMAGES))
    blobs = [encode_jpeg(_photo_like(width, height, rng), 90) for width, height in sizes]
    total = 0
    for i in range(count):
        folder = root / f"class{i % classes:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:06d}.jpg").write_bytes(blobs[i % len(blobs)])
        total += len(blobs[i % len(blobs)])
    return total


def step_loader(check: Check) -> dict[str, Any]:
    from data_shards.convert import ConvertOptions, convert_listing
    from data_shards.schema import FORMAT_WEBDATASET
    from data_shards.sources.folder import list_folder
    from scm_dist.config import DataConfig
    from scm_dist.data import device_input
    from scm_dist.data.benchmark import _measure
    from scm_dist.data.transforms import sample_crop

    sizes = check.sizes
    root = check.workdir / "loader"
    source_bytes = _imagenet_like_folder(root / "folder", sizes.loader_images)
    options = ConvertOptions(formats=(FORMAT_WEBDATASET,), workers=max(1, min(8, os.cpu_count() or 1)))
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        convert_listing(list_folder(root / "folder", "train"), root / "shards", options, {})
    crop = 224 if not check.quick else 64
    resize = crop * 256 // 224
    cfg = DataConfig(
        train_dir=str(root / "shards" / "train"),
        format="webdataset",
        resize_size=resize,
        crop_size=crop,
        batch_size=sizes.loader_batch,
        workers=sizes.loader_workers,
        shuffle_buffer=1000,
    )
    out: dict[str, Any] = {
        "images": sizes.loader_images,
        "distinct_images": min(sizes.loader_images, DISTINCT_IMAGES),
        "source_bytes_per_image": source_bytes // sizes.loader_images,
        "crop": crop,
        "batch": sizes.loader_batch,
        "cpu_decode_webdataset": {"workers": sizes.loader_workers, **_measure(cfg)},
    }
    # GPU decode: the same JPEG bytes, batched decode + the CPU path's geometry on the device
    jpegs = [path.read_bytes() for path in sorted((root / "folder").rglob("*.jpg"))]
    rng = np.random.default_rng(0)
    params = [sample_crop(rng, resize, crop) for _ in jpegs]
    decode_s = total_s = 0.0
    count = 0
    for epoch in range(3):  # the first one warms up nvJPEG
        for start in range(0, len(jpegs), sizes.loader_batch):
            chunk = slice(start, start + sizes.loader_batch)
            check.sync()
            began = time.perf_counter()
            decoded = device_input.decode_jpegs(jpegs[chunk], check.device)
            check.sync()
            decoded_at = time.perf_counter()
            batch = device_input.normalize(
                device_input.train_crops(decoded, params[chunk], resize, crop, apply_flip=False),
                device_input.flip_flags(params[chunk]),
                dtype=torch.bfloat16,
            )
            check.sync()
            if epoch:
                decode_s += decoded_at - began
                total_s += time.perf_counter() - began
                count += len(batch)
    out["gpu_decode"] = {
        "device": str(check.device),
        "images_per_s": round(count / total_s, 1),
        "decode_only_images_per_s": round(count / decode_s, 1),
        "note": "JPEG bytes already in memory (reading the tar shards is not timed)",
    }
    train = check.results.get("train_images_per_s")
    if train:
        out["train_step_images_per_s"] = train
        out["cpu_decode_over_train"] = round(out["cpu_decode_webdataset"]["images_per_s"] / train, 3)
        out["gpu_decode_over_train"] = round(out["gpu_decode"]["images_per_s"] / train, 3)
    return out


# -- 6. eval ------------------------------------------------------------------------------
def step_eval(check: Check) -> dict[str, Any]:
    checkpoint = check.results.get("eval_checkpoint")
    if checkpoint is None:
        return {"skipped": "no checkpoint: the engine step did not finish its Accelerate run"}
    from scm_dist.config import load_config
    from scm_dist.evaluation.run import evaluate

    cfg = load_config(BASE_CONFIG, check.results["eval_overrides"])
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        results = evaluate(cfg, checkpoint)
    seconds = time.perf_counter() - started
    images = check.sizes.engine_images[1]
    return {
        "images": images,
        "img_size": check.sizes.engine_img,
        "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 1),
        "note": "in-process, including the model load and the loader start",
        "metrics": {k: v for k, v in results.items() if isinstance(v, (int, float))},
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
