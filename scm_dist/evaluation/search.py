"""Per-map protocol IoUs at every CAM threshold, by the exact fast box search."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .box_search import best_box_iou, search_levels
from .contours import largest_contour_box
from .iou import box_iou
from .quantize import integer_thresholds

_EMPTY_BOX = np.zeros((1, 4), np.int64)


class MapIoUs(NamedTuple):
    """One score map's protocol results, one entry per CAM threshold."""

    largest_boxes: np.ndarray   # [n_tau, 4] box of the largest contour
    largest_iou: np.ndarray     # [n_tau] its best IoU with the GT boxes
    all_iou: np.ndarray | None  # [n_tau] best IoU over every contour's box (multi-contour)


def map_ious(quantized: np.ndarray, taus: np.ndarray, gt_boxes: np.ndarray,
             multi_contour: bool) -> MapIoUs:
    """Protocol IoUs of one uint8 map (:func:`quantize`) against its GT boxes [m, 4].

    Identical to thresholding and running ``cv2.findContours`` at every tau.
    """
    gt = np.ascontiguousarray(gt_boxes, dtype=np.int64)
    per_tau = integer_thresholds(taus, quantized)
    levels, index = np.unique(per_tau, return_inverse=True)
    image = np.ascontiguousarray(quantized)
    boxes, ties, best = search_levels(image, levels, gt, multi_contour)
    for t in np.flatnonzero(ties):
        boxes[t] = largest_contour_box(image, int(levels[t]))
    all_iou = None
    if multi_contour:
        no_contour = best < 0
        if no_contour.any():
            best[no_contour] = box_iou(_EMPTY_BOX, gt).max()
        all_iou = best[index]
    largest_iou = best_box_iou(boxes, gt)
    return MapIoUs(boxes[index], largest_iou[index], all_iou)
