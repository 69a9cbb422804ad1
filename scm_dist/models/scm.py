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
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import nn

from .functional import minmax

NEWTON_SCHULZ_ALPHA = 0.002
SCMImpl = Literal["fast", "literal"]
SCM_IMPLS: tuple[str, ...] = ("fast", "literal")


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
    matrix: torch.Tensor, iterations: int, initial: torch.Tensor | None = None
) -> torch.Tensor:
    """Approximate ``matrix``^-1 by ``iterations`` Newton-Schulz steps.

    X_0 = 0.002 * M^T (detached from autograd) unless ``initial`` is given;
    X_{k+1} = X_k (2I - M X_k); gradients flow through the iterations.
    """
    if initial is None:
        initial = NEWTON_SCHULZ_ALPHA * matrix.detach().transpose(-2, -1)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    inverse = initial
    for _ in range(iterations):
        inverse = inverse @ (2 * eye - matrix @ inverse)
    return inverse


def newton_schulz_apply_transpose(
    matrix: torch.Tensor, vectors: torch.Tensor, iterations: int, initial: torch.Tensor | None = None
) -> torch.Tensor:
    """X_T^T v for the Newton-Schulz iterate X_T of :func:`newton_schulz_inverse`,
    matrix [B, N, N], v [B, N], computed as v^T X_T without forming X_T: one N x N
    product per step.

    With Y_k = M X_k: Y_{k+1} = 2 Y_k - Y_k Y_k and v^T X_T = v^T X_0 (2I - Y_0) ...
    (2I - Y_{T-1}). The same function of (M, X_0) as the literal iteration, so gradients
    are the same too.
    """
    if initial is None:
        initial = NEWTON_SCHULZ_ALPHA * matrix.detach().transpose(-2, -1)
    product = matrix @ initial  # Y_0
    row = vectors.unsqueeze(-2) @ initial  # v^T X_0, [B, 1, N]
    for step in range(iterations):
        row = torch.baddbmm(row, row, product, beta=2, alpha=-1)
        if step + 1 < iterations:
            product = torch.baddbmm(product, product, product, beta=2, alpha=-1)
    return row.squeeze(-2)


class SCMLayer(nn.Module):
    """One calibration layer with learnable lambda (``lam``) and t (``t``)."""

    def __init__(self, iterations: int, lam: float = 1.0, t: float = 0.5, impl: SCMImpl = "fast") -> None:
        super().__init__()
        if impl not in SCM_IMPLS:
            raise ValueError(f"SCM impl must be one of {SCM_IMPLS}, got {impl!r}")
        self.iterations = iterations
        self.impl = impl
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
        positions = calibration_positions(height, width, values.device)
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
            propagation = newton_schulz_inverse(matrix, self.iterations, initial).transpose(-2, -1)
            return (propagation @ cam.unsqueeze(-1)).squeeze(-1)
        return newton_schulz_apply_transpose(matrix, cam, self.iterations, initial)

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

    def __init__(
        self,
        grid_size: tuple[int, int],
        num_layers: int = 4,
        first_iterations: int = 16,
        later_iterations: int = 4,
        impl: SCMImpl = "fast",
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.layers = nn.ModuleList(
            SCMLayer(first_iterations if i == 0 else later_iterations, impl=impl) for i in range(num_layers)
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
