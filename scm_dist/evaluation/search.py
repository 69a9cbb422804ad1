"""Per-map protocol IoUs at every CAM threshold, by the exact fast box search."""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from .box_search import best_box_iou, map_search, threshold_hits
from .contours import largest_contour_box

_EXACT = np.zeros(0)   # no IoU thresholds: every IoU exact


class MapIoUs(NamedTuple):
    """One score map's protocol results, one entry per CAM threshold."""

    largest_boxes: np.ndarray   # [n_tau, 4] box of the largest contour
    largest_iou: np.ndarray     # [n_tau] its best IoU with the GT boxes
    all_iou: np.ndarray | None  # [n_tau] best IoU over every contour's box (multi-contour)


def correct_at(ious: np.ndarray, iou_thresholds: Sequence[int]) -> np.ndarray:
    """[n_iou, n_tau] int64: IoU >= threshold/100 per IoU threshold and CAM threshold."""
    return (ious[None, :] >= np.asarray(iou_thresholds)[:, None] / 100).astype(np.int64)


def _search(quantized: np.ndarray, taus: np.ndarray, gt_boxes: np.ndarray,
            multi_contour: bool, deltas: np.ndarray):
    """Per distinct level: boxes, largest-contour IoUs, all-contour IoUs; and the index
    of each tau's level. Largest-area ties are settled by OpenCV's contour order."""
    gt = np.ascontiguousarray(gt_boxes, dtype=np.int64)
    image = np.ascontiguousarray(quantized)
    levels, index, boxes, ties, largest, every = map_search(image, taus, gt, multi_contour,
                                                            deltas)
    if ties.any():
        for t in np.flatnonzero(ties):
            boxes[t] = largest_contour_box(image, int(levels[t]))
        largest = best_box_iou(boxes, gt)
    return index, boxes, largest, every if multi_contour else None


def map_ious(quantized: np.ndarray, taus: np.ndarray, gt_boxes: np.ndarray,
             multi_contour: bool) -> MapIoUs:
    """Protocol IoUs of one uint8 map (:func:`quantize`) against its GT boxes [m, 4].

    Identical to thresholding and running ``cv2.findContours`` at every tau.
    """
    index, boxes, largest, every = _search(quantized, taus, gt_boxes, multi_contour, _EXACT)
    return MapIoUs(boxes[index], largest[index], None if every is None else every[index])


def map_hits(quantized: np.ndarray, taus: np.ndarray, gt_boxes: np.ndarray,
             iou_thresholds: Sequence[int], multi_contour: bool
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`correct_at` of the largest contour's IoUs and (``multi_contour``) of every
    contour's best IoU, identical to :func:`map_ious`'s; hole boxes that cannot change
    a hit are skipped."""
    deltas = np.asarray(iou_thresholds) / 100
    index, _, largest, every = _search(quantized, taus, gt_boxes, multi_contour, deltas)
    return (threshold_hits(largest, index, deltas),
            None if every is None else threshold_hits(every, index, deltas))
