"""Spatial Calibration Module (SCM), exactly as docs SCM_SPEC.md states it.

Shapes: S [B, K, H, W] class maps (the token features), c [B, N] attention CAM,
N = H * W, patches in row-major order.
"""
from __future__ import annotations

import torch
from torch import nn

from .functional import minmax

NEWTON_SCHULZ_ALPHA = 0.002


def grid_laplacian(height: int, width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Laplacian L = D - Adj of the 4-neighbour grid graph, [N, N], built vectorised.

    D is the in-degree (column sums of Adj); the grid graph is symmetric, so it equals
    the number of neighbours of each patch.
    """
    n = height * width
    index = torch.arange(n).reshape(height, width)
    sources = torch.cat([index[:, :-1].flatten(), index[:-1, :].flatten()])
    targets = torch.cat([index[:, 1:].flatten(), index[1:, :].flatten()])
    adjacency = torch.zeros(n, n, dtype=dtype)
    adjacency[sources, targets] = 1
    adjacency[targets, sources] = 1
    return torch.diag(adjacency.sum(dim=0)) - adjacency


def cosine_similarity_matrix(features: torch.Tensor) -> torch.Tensor:
    """Sim_ij = <s_i, s_j> / (|s_i| |s_j|) for features [B, K, N] -> [B, N, N]."""
    norms = features.norm(dim=1, keepdim=True).clamp_min(1e-12)
    unit = features / norms
    return unit.transpose(1, 2) @ unit


def newton_schulz_inverse(matrix: torch.Tensor, iterations: int,
                          initial: torch.Tensor | None = None) -> torch.Tensor:
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


class SCMLayer(nn.Module):
    """One calibration layer with learnable lambda (``lam``) and t (``t``)."""

    def __init__(self, iterations: int, lam: float = 1.0, t: float = 0.5) -> None:
        super().__init__()
        self.iterations = iterations
        self.lam = nn.Parameter(torch.full((1,), float(lam)))
        self.t = nn.Parameter(torch.full((1,), float(t)))

    def propagation_matrix(self, class_maps: torch.Tensor, laplacian: torch.Tensor,
                           initial: torch.Tensor | None = None) -> torch.Tensor:
        """X_T^T with M = L * (lambda Sim - 1), [B, N, N]."""
        similarity = cosine_similarity_matrix(class_maps.flatten(2))
        calibration = laplacian * (self.lam * similarity - 1)
        return newton_schulz_inverse(calibration, self.iterations, initial).transpose(-2, -1)

    def forward(self, class_maps: torch.Tensor, cam: torch.Tensor, laplacian: torch.Tensor,
                initial: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        propagation = self.propagation_matrix(class_maps, laplacian, initial)
        update = (propagation @ cam.unsqueeze(-1)).squeeze(-1)
        peak = cam.amax(dim=1, keepdim=True)
        # an all-zero cam (constant attention) gives update 0; avoid 0/0
        update = update / (self.t * torch.where(peak > 0, peak, torch.ones_like(peak)))
        update = minmax(update - torch.tanh(update), dim=1)
        class_maps = class_maps + class_maps * update.reshape(class_maps.shape[0], 1,
                                                              *class_maps.shape[2:])
        return class_maps, cam + update


class SpatialCalibration(nn.Module):
    """Four SCM layers in sequence (16 Newton-Schulz iterations first, then 4)."""

    def __init__(self, grid_size: tuple[int, int], num_layers: int = 4,
                 first_iterations: int = 16, later_iterations: int = 4) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.layers = nn.ModuleList(
            SCMLayer(first_iterations if i == 0 else later_iterations) for i in range(num_layers))
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
