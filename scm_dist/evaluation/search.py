"""Per-map protocol IoUs at every CAM threshold, by the exact fast box search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from data_shards.boxes import best_box_iou

from .box_search.maps import maps_search
from .contours import largest_contour_box

_EXACT = np.zeros(0)  # no IoU thresholds: every IoU exact
_ONE = np.zeros(1, np.int64)  # one map, of the first GT boxes


class MapIoUs(NamedTuple):
    """Score maps' protocol results, one entry per map and CAM threshold."""

    largest_boxes: np.ndarray  # [n, n_tau, 4] box of the largest contour
    largest_iou: np.ndarray  # [n, n_tau] its best IoU with the GT boxes
    all_iou: np.ndarray | None  # [n, n_tau] best IoU over every contour's box (multi-contour)


def correct_at(ious: np.ndarray, iou_thresholds: Sequence[int]) -> np.ndarray:
    """[..., n_iou, n_tau] int64: IoU >= threshold/100 per IoU threshold and CAM threshold
    of ``ious`` [..., n_tau]."""
    deltas = np.asarray(iou_thresholds)[:, None] / 100
    return (ious[..., None, :] >= deltas).astype(np.int64)


def maps_ious(
    images: np.ndarray,
    taus: np.ndarray,
    gt_boxes: Sequence[np.ndarray],
    owner: np.ndarray,
    multi_contour: np.ndarray,
    deltas: np.ndarray = _EXACT,
) -> MapIoUs:
    """Protocol IoUs of uint8 maps [n, H, W] (:func:`quantize`); map i is matched with
    ``gt_boxes[owner[i]]`` [m, 4] and, where ``multi_contour[i]``, every contour counts
    (``all_iou`` is -1 elsewhere).

    Identical to thresholding and running ``cv2.findContours`` at every tau; with IoU
    thresholds ``deltas`` the all-contour IoUs are exact as far as ``>= delta`` goes.
    Largest-area ties are settled by OpenCV's contour order.
    """
    images = np.ascontiguousarray(images)
    gt = [np.asarray(boxes, np.int64).reshape(-1, 4) for boxes in gt_boxes]
    stops = np.cumsum([len(boxes) for boxes in gt])
    bounds = np.stack([stops - [len(boxes) for boxes in gt], stops], axis=1)[owner]
    levels, boxes, ties, largest, every = maps_search(
        images, taus, np.concatenate(gt), bounds, np.asarray(multi_contour, np.bool_), deltas
    )
    for i in np.flatnonzero(ties.any(axis=1)):
        for level in np.unique(levels[i][ties[i]]):
            at = levels[i] == level
            boxes[i, at] = largest_contour_box(images[i], int(level))
            largest[i, at] = best_box_iou(boxes[i, at][:1], gt[owner[i]])[0]
    return MapIoUs(boxes, largest, every)


def maps_hits(
    images: np.ndarray,
    taus: np.ndarray,
    gt_boxes: Sequence[np.ndarray],
    owner: np.ndarray,
    multi_contour: np.ndarray,
    iou_thresholds: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`correct_at` [n, n_iou, n_tau] of :func:`maps_ious`' largest-contour and
    all-contour IoUs (no hits where not ``multi_contour``); hole boxes that cannot change
    a hit are skipped."""
    found = maps_ious(images, taus, gt_boxes, owner, multi_contour, np.asarray(iou_thresholds) / 100)
    assert found.all_iou is not None  # maps_ious always fills it
    return correct_at(found.largest_iou, iou_thresholds), correct_at(found.all_iou, iou_thresholds)


def map_ious(quantized: np.ndarray, taus: np.ndarray, gt_boxes: np.ndarray, multi_contour: bool) -> MapIoUs:
    """:func:`maps_ious` of one map against its GT boxes [m, 4] (entries [n_tau, ...];
    ``all_iou`` None unless ``multi_contour``)."""
    found = maps_ious(quantized[None], taus, [gt_boxes], _ONE, np.array([multi_contour]))
    assert found.all_iou is not None  # maps_ious always fills it
    return MapIoUs(found.largest_boxes[0], found.largest_iou[0], found.all_iou[0] if multi_contour else None)


def map_hits(
    quantized: np.ndarray,
    taus: np.ndarray,
    gt_boxes: np.ndarray,
    iou_thresholds: Sequence[int],
    multi_contour: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`maps_hits` of one map ([n_iou, n_tau]; the second None unless
    ``multi_contour``)."""
    largest, every = maps_hits(
        quantized[None], taus, [gt_boxes], _ONE, np.array([multi_contour]), iou_thresholds
    )
    return largest[0], every[0] if multi_contour else None
