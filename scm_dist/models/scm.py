"""Spatial Calibration Module (SCM), exactly as docs/MODEL.md states it.

Shapes: S [B, K, H, W] class maps (the token features), c [B, N] attention CAM,
N = H * W, patches in row-major order.

Two implementations with the same outputs and gradients (up to rounding):

* ``fast`` (default): M = L * (lambda Sim - 1) is zero off the grid's edges, so only the
  similarities of neighbouring patches are computed (~3NK instead of N^2 K products).
  And with Y_k = M X_k, Newton-Schulz gives Y_{k+1} = Y_k (2I - Y_k) and
  X_T = X_0 (2I - Y_0) ... (2I - Y_{T-1}), so c' = X_T^T c is T matrix-vector products
  after one N x N product per step, instead of two (X_T itself is never formed).
* ``literal``: every step of the spec as written (full Sim, the X_k iteration); kept for
  tests and benchmarks.

Precision of the N x N Newton-Schulz products (``precision``): ``fp32`` (full float32,
the default) or ``tf32`` (TF32 tensor cores on CUDA, forward and backward; on CPU, where
TF32 does not exist, emulated by rounding the operands to TF32's 10-bit mantissa before
each product). SCM always runs in at least float32, also under bf16 autocast.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from .functional import minmax

NEWTON_SCHULZ_ALPHA = 0.002
SCMImpl = Literal["fast", "literal"]
SCM_IMPLS: tuple[str, ...] = ("fast", "literal")
SCMPrecision = Literal["fp32", "tf32", "tf32_emulated"]
# tf32_emulated: operand rounding on every device (CPU's tf32; the reference for real TF32)
SCM_PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "tf32_emulated")
TF32_DROPPED_BITS = 13  # float32 keeps 23 mantissa bits, TF32 10


def round_to_tf32(values: torch.Tensor) -> torch.Tensor:
    """float32 ``values`` rounded to TF32 (10-bit mantissa, round to nearest even); the
    gradient passes straight through. Finite inputs only (SCM's are)."""
    bits = values.detach().contiguous().view(torch.int32)
    half = (1 << (TF32_DROPPED_BITS - 1)) - 1
    bits = (bits + half + ((bits >> TF32_DROPPED_BITS) & 1)) & ~((1 << TF32_DROPPED_BITS) - 1)
    return values + (bits.view(torch.float32) - values).detach()


@contextmanager
def cublas_tf32(enabled: bool) -> Iterator[None]:
    """cuBLAS float32 products on TF32 tensor cores (``enabled``) or in full float32, restored
    after. Only CUDA reads the flag."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


class _CudaTF32Baddbmm(torch.autograd.Function):
    """``beta * input + alpha * (a @ b)`` with every product (forward and backward) on TF32."""

    @staticmethod
    def forward(ctx, input, a, b, beta, alpha):  # noqa: A002  (torch's argument name)
        ctx.save_for_backward(a, b)
        ctx.beta, ctx.alpha = beta, alpha
        with cublas_tf32(True):
            return _baddbmm(input, a, b, beta, alpha)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_input = grad_a = grad_b = None
        with cublas_tf32(True):
            if ctx.needs_input_grad[0]:
                grad_input = grad * ctx.beta
            if ctx.needs_input_grad[1]:
                grad_a = torch.bmm(grad, b.transpose(-2, -1)) * ctx.alpha
            if ctx.needs_input_grad[2]:
                grad_b = torch.bmm(a.transpose(-2, -1), grad) * ctx.alpha
        return grad_input, grad_a, grad_b, None, None


def product(
    a: torch.Tensor,
    b: torch.Tensor,
    precision: SCMPrecision = "fp32",
    input: torch.Tensor | None = None,  # noqa: A002
    beta: float = 1.0,
    alpha: float = 1.0,
) -> torch.Tensor:
    """Batched ``a @ b``, or ``beta * input + alpha * (a @ b)`` when ``input`` is given, at
    ``precision``: fp32, or TF32 (real on CUDA, emulated by operand rounding elsewhere and
    with ``tf32_emulated``).
    Operands wider than float32 (float64 references) are multiplied exactly."""
    if precision == "fp32" or a.dtype != torch.float32:
        return _baddbmm(input, a, b, beta, alpha)
    if a.is_cuda and precision == "tf32":
        return _CudaTF32Baddbmm.apply(input, a, b, beta, alpha)
    return _baddbmm(input, round_to_tf32(a), round_to_tf32(b), beta, alpha)


def _baddbmm(
    input: torch.Tensor | None,  # noqa: A002
    a: torch.Tensor,
    b: torch.Tensor,
    beta: float,
    alpha: float,
) -> torch.Tensor:
    if input is None:
        return torch.bmm(a, b) if alpha == 1 else torch.bmm(a, b) * alpha
    return torch.baddbmm(input, a, b, beta=beta, alpha=alpha)


def grid_laplacian(height: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Laplacian L = D - Adj of the 4-neighbour grid graph, [N, N], built vectorised.

    D is the in-degree (column sums of Adj); the grid graph is symmetric, so it equals
    the number of neighbours of each patch.
    """
    sources, targets = grid_edges(height, width)
    n = height * width
    adjacency = torch.zeros(n, n, dtype=dtype)
    adjacency[sources, targets] = 1
    adjacency[targets, sources] = 1
    return torch.diag(adjacency.sum(dim=0)) - adjacency


def grid_edges(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch indices of the grid's edges: every horizontal pair (row-major), then every
    vertical pair; (sources, targets), each [E]."""
    index = torch.arange(height * width).reshape(height, width)
    sources = torch.cat([index[:, :-1].flatten(), index[:-1, :].flatten()])
    targets = torch.cat([index[:, 1:].flatten(), index[1:, :].flatten()])
    return sources, targets


@functools.lru_cache(maxsize=16)
def calibration_positions(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Flat [N * N] indices of M's non-zeros: the diagonal, then the grid's edges both ways
    (in :func:`grid_edges` order); a constant of the grid, built once per grid and device."""
    n = height * width
    sources, targets = grid_edges(height, width)
    diagonal = torch.arange(n) * (n + 1)
    return torch.cat([diagonal, sources * n + targets, targets * n + sources]).to(device)


def cosine_similarity_matrix(features: torch.Tensor) -> torch.Tensor:
    """Sim_ij = <s_i, s_j> / (|s_i| |s_j|) for features [B, K, N] -> [B, N, N]."""
    norms = features.norm(dim=1, keepdim=True).clamp_min(1e-12)
    unit = features / norms
    return unit.transpose(1, 2) @ unit


def grid_cosine_similarity(class_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sim on the grid's edges and diagonal only, for class maps [B, K, H, W].

    Returns (edge similarities [B, E] in :func:`grid_edges` order, Sim_ii [B, N]).
    """
    norms = class_maps.norm(dim=1).clamp_min(1e-12)  # [B, H, W]
    right = (class_maps[..., :, :-1] * class_maps[..., :, 1:]).sum(dim=1)
    down = (class_maps[..., :-1, :] * class_maps[..., 1:, :]).sum(dim=1)
    right = right / (norms[..., :, :-1] * norms[..., :, 1:])
    down = down / (norms[..., :-1, :] * norms[..., 1:, :])
    edges = torch.cat([right.flatten(1), down.flatten(1)], dim=1)
    diagonal = class_maps.pow(2).sum(dim=1) / norms.pow(2)
    return edges, diagonal.flatten(1)


def newton_schulz_inverse(
    matrix: torch.Tensor,
    iterations: int,
    initial: torch.Tensor | None = None,
    precision: SCMPrecision = "fp32",
) -> torch.Tensor:
    """Approximate ``matrix``^-1 by ``iterations`` Newton-Schulz steps.

    X_0 = 0.002 * M^T (detached from autograd) unless ``initial`` is given;
    X_{k+1} = X_k (2I - M X_k); gradients flow through the iterations. The products run at
    ``precision`` (see :func:`product`).
    """
    if initial is None:
        initial = NEWTON_SCHULZ_ALPHA * matrix.detach().transpose(-2, -1)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    inverse = initial
    for _ in range(iterations):
        correction = product(matrix, inverse, precision, input=2 * eye, alpha=-1)
        inverse = product(inverse, correction, precision)
    return inverse


def newton_schulz_apply_transpose(
    matrix: torch.Tensor,
    vectors: torch.Tensor,
    iterations: int,
    initial: torch.Tensor | None = None,
    precision: SCMPrecision = "fp32",
) -> torch.Tensor:
    """X_T^T v for the Newton-Schulz iterate X_T of :func:`newton_schulz_inverse`,
    matrix [B, N, N], v [B, N], computed as v^T X_T without forming X_T: one N x N
    product per step.

    With Y_k = M X_k: Y_{k+1} = 2 Y_k - Y_k Y_k and v^T X_T = v^T X_0 (2I - Y_0) ...
    (2I - Y_{T-1}). The same function of (M, X_0) as the literal iteration, so gradients
    are the same too. The N x N products run at ``precision`` (see :func:`product`); the
    matrix-vector ones (a sliver of the work) stay in float32.
    """
    if initial is None:
        initial = NEWTON_SCHULZ_ALPHA * matrix.detach().transpose(-2, -1)
    powers = product(matrix, initial, precision)  # Y_0
    row = vectors.unsqueeze(-2) @ initial  # v^T X_0, [B, 1, N]
    for step in range(iterations):
        row = torch.baddbmm(row, row, powers, beta=2, alpha=-1)
        if step + 1 < iterations:
            powers = product(powers, powers, precision, input=powers, beta=2, alpha=-1)
    return row.squeeze(-2)


class SCMLayer(nn.Module):
    """One calibration layer with learnable lambda (``lam``) and t (``t``)."""

    def __init__(
        self,
        iterations: int,
        lam: float = 1.0,
        t: float = 0.5,
        impl: SCMImpl = "fast",
        precision: SCMPrecision = "fp32",
    ) -> None:
        super().__init__()
        if impl not in SCM_IMPLS:
            raise ValueError(f"SCM impl must be one of {SCM_IMPLS}, got {impl!r}")
        if precision not in SCM_PRECISIONS:
            raise ValueError(f"SCM precision must be one of {SCM_PRECISIONS}, got {precision!r}")
        self.iterations = iterations
        self.impl = impl
        self.precision = precision
        self.lam = nn.Parameter(torch.full((1,), float(lam)))
        self.t = nn.Parameter(torch.full((1,), float(t)))

    def calibration_matrix(self, class_maps: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """M = L * (lambda Sim - 1), [B, N, N]."""
        if self.impl == "literal":
            return laplacian * (self.lam * cosine_similarity_matrix(class_maps.flatten(2)) - 1)
        height, width = class_maps.shape[2:]
        n = height * width
        edges, diagonal = grid_cosine_similarity(class_maps)
        # L_ii is the degree; off the diagonal L_ij = -1 on the edges and 0 elsewhere
        neighbours = 1 - self.lam * edges
        values = torch.cat([laplacian.diagonal() * (self.lam * diagonal - 1), neighbours, neighbours], dim=1)
        matrix = values.new_zeros(values.shape[0], n * n)
        # compiled: traced once into the graph (Dynamo would bypass the cache anyway)
        build = calibration_positions.__wrapped__ if torch.compiler.is_compiling() else calibration_positions
        positions = build(height, width, values.device)
        return matrix.index_copy(1, positions, values).view(-1, n, n)

    def propagate(
        self,
        class_maps: torch.Tensor,
        cam: torch.Tensor,
        laplacian: torch.Tensor,
        initial: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """c' before its normalisation: X_T^T c, [B, N]."""
        matrix = self.calibration_matrix(class_maps, laplacian)
        if self.impl == "literal":
            inverse = newton_schulz_inverse(matrix, self.iterations, initial, self.precision)
            return (inverse.transpose(-2, -1) @ cam.unsqueeze(-1)).squeeze(-1)
        return newton_schulz_apply_transpose(matrix, cam, self.iterations, initial, self.precision)

    def forward(
        self,
        class_maps: torch.Tensor,
        cam: torch.Tensor,
        laplacian: torch.Tensor,
        initial: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        update = self.propagate(class_maps, cam, laplacian, initial)
        peak = cam.amax(dim=1, keepdim=True)
        # an all-zero cam (constant attention) gives update 0; avoid 0/0
        update = update / (self.t * torch.where(peak > 0, peak, torch.ones_like(peak)))
        update = minmax(update - torch.tanh(update), dim=1)
        class_maps = class_maps + class_maps * update.reshape(class_maps.shape[0], 1, *class_maps.shape[2:])
        return class_maps, cam + update


class SpatialCalibration(nn.Module):
    """Four SCM layers in sequence (16 Newton-Schulz iterations first, then 4)."""

    laplacian: torch.Tensor  # the grid's Laplacian, a buffer registered in __init__

    def __init__(
        self,
        grid_size: tuple[int, int],
        num_layers: int = 4,
        first_iterations: int = 16,
        later_iterations: int = 4,
        impl: SCMImpl = "fast",
        precision: SCMPrecision = "fp32",
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.layers = nn.ModuleList(
            SCMLayer(first_iterations if i == 0 else later_iterations, impl=impl, precision=precision)
            for i in range(num_layers)
        )
        self.register_buffer("laplacian", grid_laplacian(*grid_size), persistent=False)

    def forward(self, class_maps: torch.Tensor, attention_cam: torch.Tensor) -> torch.Tensor:
        """Return the calibrated class maps S [B, K, H, W].

        SCM runs in at least float32 (autocast is off inside): Newton-Schulz in
        bf16/fp16 would not converge.
        """
        dtype = torch.promote_types(class_maps.dtype, torch.float32)
        with torch.autocast(device_type=class_maps.device.type, enabled=False):
            maps = class_maps.to(dtype)
            cam = minmax(attention_cam.to(dtype), dim=1)
            laplacian = self.laplacian.to(dtype)
            for layer in self.layers:
                maps, cam = layer(maps, cam, laplacian)
        return maps
