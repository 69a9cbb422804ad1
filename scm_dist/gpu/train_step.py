"""Steps 3 and 7 of the GPU check: train-step images/s, MFU and peak memory, eager, compiled
and naive; and the SCM step with TF32 products.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .common import Check, wsol_model


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

    breaks: dict[str, int] = counters.get("graph_break", {})
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
                return TrainStep(wsol_model(family, sizes, **kwargs), b, sizes.img, device, backend)

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
        if (eager := _speed(result, "eager")) and (naive := _speed(result, "naive")):
            result["efficient_over_naive"] = round(eager / naive, 3)
        out[f"deit_{family}_{sizes.size}"] = result
    scm, tscam = out[f"deit_scm_{sizes.size}"], out[f"deit_tscam_{sizes.size}"]
    for variant in ("eager", "compiled"):
        if (scm_speed := _speed(scm, variant)) and (tscam_speed := _speed(tscam, variant)):
            out[f"scm_cost_over_tscam_{variant}"] = round(tscam_speed / scm_speed - 1, 3)
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
        if (tf32_speed := _speed(result, f"{variant}_tf32")) and (fp32_speed := _speed(fp32, variant)):
            result[f"tf32_over_fp32_{variant}"] = round(tf32_speed / fp32_speed, 3)
    return result
