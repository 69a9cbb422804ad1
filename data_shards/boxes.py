"""IoU of inclusive pixel boxes, the one implementation of the project.

Boxes are ``[x0, y0, x1, y1]`` with both corners inside the box (the schema's convention,
data_shards/schema.py), so a box covers ``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixels: the "+1"
convention of the WSOL protocol (docs/EVALUATION.md). Compiled with numba: the evaluation's
box search calls :func:`iou_with_gt` in its inner loops.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def iou_with_gt(x0: float, y0: float, x1: float, y1: float, gt: np.ndarray) -> float:
    """Largest IoU of one box with any GT box of ``gt`` [m, 4] (0 when ``gt`` is empty)."""
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
def best_box_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best IoU of each box [n, 4] with any GT box [m, 4] -> [n]."""
    out = np.empty(boxes.shape[0])
    for i in range(boxes.shape[0]):
        out[i] = iou_with_gt(boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], gt)
    return out
