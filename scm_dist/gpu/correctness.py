"""Steps 1 and 2 of the GPU check: the environment, and the paths' outputs and gradients
compared (fused vs naive attention, fast vs literal SCM, bf16 vs fp32, SCM precision).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
from typing import Any

import torch
import torch.nn.functional as F

from .common import PACKAGES, Check, wsol_model


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
    scale = torch.sqrt(torch.stack([g.pow(2).sum() for g in b[1].values()]).sum()).clamp_min(1e-30)
    per_param = {name: float((g - b[1][name]).norm() / scale) for name, g in a[1].items()}
    total = float(
        torch.sqrt(torch.stack([(g - b[1][name]).pow(2).sum() for name, g in a[1].items()]).sum()) / scale
    )
    worst = max(per_param, key=per_param.__getitem__)
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
    paths: dict[str, dict[str, Any]] = {
        "efficient": dict(attn_impl="fused", scm_impl="fast"),
        "naive_attention": dict(attn_impl="naive", scm_impl="fast"),
        "literal_scm": dict(attn_impl="fused", scm_impl="literal"),
    }
    runs = {}
    with _full_fp32():
        for path, kwargs in paths.items():
            torch.manual_seed(0)
            model = wsol_model("scm", sizes, **kwargs).to(device).train()
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
