"""Small tensor helpers shared by the models (and by evaluation)."""

from __future__ import annotations

import torch


def minmax(values: torch.Tensor, dim: int | tuple[int, ...] = -1) -> torch.Tensor:
    """Min-max normalise ``values`` to [0, 1] over ``dim``, per remaining index.

    A constant slice (max == min) maps to zeros instead of NaN, and its gradient is
    zero rather than NaN.
    """
    low = values.amin(dim=dim, keepdim=True)
    high = values.amax(dim=dim, keepdim=True)
    span = high - low
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    return (values - low) / safe_span
