"""The literal protocol with OpenCV: one ``findContours`` per CAM threshold.

Used to settle the rare largest-area ties of the fast search, and as the baseline the
benchmark compares against.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from data_shards.boxes import best_box_iou

from .quantize import integer_thresholds, quantize


def _contours(quantized: np.ndarray, level: int) -> Sequence[np.ndarray]:
    _, binary = cv2.threshold(quantized, level, 255, cv2.THRESH_BINARY)
    return cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]


def _protocol_box(contour: np.ndarray, height: int, width: int) -> list[int]:
    x, y, w, h = cv2.boundingRect(contour)
    return [x, y, min(x + w, width - 1), min(y + h, height - 1)]


def largest_contour_box(quantized: np.ndarray, level: int) -> np.ndarray:
    """Box of the first largest-area contour of ``quantized > level`` ([0,0,0,0] if none)."""
    contours = _contours(quantized, level)
    if not contours:
        return np.zeros(4, np.int64)
    return np.asarray(_protocol_box(max(contours, key=cv2.contourArea), *quantized.shape))


def literal_map_ious(
    scoremap: np.ndarray, taus: np.ndarray, gt_boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per tau: IoU of the largest contour's box and best IoU over all contours' boxes."""
    quantized = quantize(scoremap)
    height, width = quantized.shape
    largest, best = np.empty(len(taus)), np.empty(len(taus))
    for i, level in enumerate(integer_thresholds(taus, quantized)):
        contours = _contours(quantized, int(level))
        if not contours:
            largest[i] = best[i] = best_box_iou(np.zeros((1, 4)), gt_boxes)[0]
            continue
        boxes = np.asarray([_protocol_box(c, height, width) for c in contours])
        ious = best_box_iou(boxes, gt_boxes)
        largest[i] = ious[max(range(len(contours)), key=lambda j: cv2.contourArea(contours[j]))]
        best[i] = ious.max()
    return largest, best
