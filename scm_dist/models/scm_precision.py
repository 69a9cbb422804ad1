"""How precise SCM is at each ``scm_precision``: measured against float64.

``precision_report(device)`` builds smooth class maps and an attention CAM like a trained
model's (low-frequency fields, one object blob), then reports for ``fp32`` and ``tf32``
(real TF32 on CUDA, emulated by operand rounding on CPU; on CUDA the emulation is reported
too, as ``tf32_emulated``):

* ``newton_schulz_residual``: ||M X_T - I||_F / sqrt(N) of the first layer (T = 16),
  mean over the batch, beside float64's (the iteration's own truncation, which no
  precision can beat);
* ``inverse_error``: ||X_T - X_T(float64)||_F / ||X_T(float64)||_F;
* ``output_error`` and ``grad_error``: the calibrated maps of the four layers, and the
  gradient of their mean w.r.t. the class maps, max |difference| / max |float64 value|.

The GPU check (``python -m scm_dist.bench gpu``) and the CPU tests call it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

from .scm import SCMLayer, SCMPrecision, SpatialCalibration, newton_schulz_inverse


def smooth_inputs(batch: int, classes: int, grid: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class maps [B, K, g, g] and an attention CAM [B, g*g] (float64, CPU): bilinear
    upsampled 4x4 noise plus a little pixel noise, and a Gaussian blob around a random
    centre plus noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, classes, 4, 4, generator=gen, dtype=torch.float64)
    maps = F.interpolate(coarse, size=(grid, grid), mode="bilinear", align_corners=False)
    maps = maps + 0.1 * torch.randn(maps.shape, generator=gen, dtype=torch.float64)
    centre = torch.rand(batch, 2, 1, 1, generator=gen, dtype=torch.float64) * grid
    rows = torch.arange(grid, dtype=torch.float64).view(1, grid, 1)
    cols = torch.arange(grid, dtype=torch.float64).view(1, 1, grid)
    blob = torch.exp(-((rows - centre[:, 0]) ** 2 + (cols - centre[:, 1]) ** 2) / (2 * (grid / 5) ** 2))
    cam = blob.flatten(1) + 0.05 * torch.rand(batch, grid * grid, generator=gen, dtype=torch.float64)
    return maps, cam


def _relative(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max |value - reference| / max |reference|."""
    return float((value.double() - reference).abs().max() / reference.abs().max().clamp_min(1e-300))


def _run(
    precision: SCMPrecision | Literal["float64"],
    device: torch.device,
    maps: torch.Tensor,
    cam: torch.Tensor,
    first_iterations: int,
) -> dict[str, torch.Tensor]:
    """Layer 1's M and X_T, the four layers' output and its gradient, at ``precision``
    (``float64``: the reference), returned in float64 on the CPU."""
    dtype = torch.float64 if precision == "float64" else torch.float32
    height, width = maps.shape[-2:]
    scm = SpatialCalibration(
        (height, width),
        first_iterations=first_iterations,
        precision="fp32" if precision == "float64" else precision,
    ).to(device=device, dtype=dtype)
    maps_in = maps.to(device=device, dtype=dtype).requires_grad_(True)
    layer = scm.layers[0]
    assert isinstance(layer, SCMLayer)
    matrix = layer.calibration_matrix(maps_in.detach(), scm.laplacian)
    inverse = newton_schulz_inverse(matrix, layer.iterations, precision=layer.precision)
    output = scm(maps_in, cam.to(device=device, dtype=dtype))
    (grad,) = torch.autograd.grad(output.mean(), maps_in)
    return {
        name: value.detach().double().cpu()
        for name, value in dict(matrix=matrix, inverse=inverse, output=output, grad=grad).items()
    }


def precision_report(
    device: str | torch.device = "cpu",
    batch: int = 8,
    classes: int = 200,
    grid: int = 14,
    first_iterations: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """Errors of each SCM precision against float64 (see the module docstring)."""
    device = torch.device(device)
    maps, cam = smooth_inputs(batch, classes, grid, seed)
    reference = _run("float64", device, maps, cam, first_iterations)
    eye = torch.eye(grid * grid, dtype=torch.float64)

    def residual(inverse: torch.Tensor) -> float:
        matrix = reference["matrix"]
        return float((matrix @ inverse - eye).norm(dim=(-2, -1)).mean() / math.sqrt(grid * grid))

    report: dict[str, Any] = {
        "device": str(device),
        "batch": batch,
        "classes": classes,
        "grid": grid,
        "iterations_layer1": first_iterations,
        "tf32_kind": "real (cuBLAS TF32)"
        if device.type == "cuda"
        else "emulated (operands rounded to 10 bits)",
        "float64": {"newton_schulz_residual": residual(reference["inverse"])},
    }
    names: list[SCMPrecision] = ["fp32", "tf32"]
    if device.type == "cuda":
        names.append("tf32_emulated")
    for name in names:
        run = _run(name, device, maps, cam, first_iterations)
        report[name] = {
            "newton_schulz_residual": residual(run["inverse"]),
            "inverse_error": float(
                (run["inverse"] - reference["inverse"]).norm() / reference["inverse"].norm()
            ),
            "output_error": _relative(run["output"], reference["output"]),
            "grad_error": _relative(run["grad"], reference["grad"]),
        }
    return report
