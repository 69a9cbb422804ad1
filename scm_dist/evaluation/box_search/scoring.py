"""The GT cover bound of the box search (the IoU itself: data_shards.boxes, "+1" convention)."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _best_cover(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> float:
    """Largest share of a GT box covered by the box: a bound on the IoU of any box
    inside it (a hole's box lies inside its component's box)."""
    best = 0.0
    for g in range(gt.shape[0]):
        iw = min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        ih = min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        gt_area = (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1)
        value = max(iw, 0) * max(ih, 0) / gt_area
        if value > best:
            best = value
    return best
