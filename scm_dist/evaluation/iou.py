"""Box IoU with the "+1" pixel convention of the WSOL protocol."""

from __future__ import annotations

import numpy as np


def box_iou(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """IoU of every box [n, 4] with every GT box [m, 4] -> [n, m] float64.

    Boxes are inclusive pixel boxes x0, y0, x1, y1: area = (x1-x0+1) * (y1-y0+1).
    """
    a = np.asarray(boxes, dtype=np.int64)[:, None, :]
    b = np.asarray(gt_boxes, dtype=np.int64)[None, :, :]
    inter_w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0)
    inter_h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    return inter / (area_a + area_b - inter)
