"""IoU ("+1" convention) of boxes with a map's GT boxes, and the GT cover bound."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _best_iou(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> float:
    """Largest IoU ("+1" convention) of one box with any GT box."""
    best = 0.0
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    for g in range(gt.shape[0]):
        iw = min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        ih = min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        inter = max(iw, 0) * max(ih, 0)
        gt_area = (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1)
        value = inter / (area + gt_area - inter)
        if value > best:
            best = value
    return best


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


@nb.njit(cache=True)
def best_box_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best IoU of each box [n, 4] with any GT box."""
    out = np.empty(boxes.shape[0])
    for i in range(boxes.shape[0]):
        out[i] = _best_iou(boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], gt)
    return out
