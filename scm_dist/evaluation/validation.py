"""Input checks for the metrics: clear errors that say what is wrong and where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def as_numpy(values: Any, name: str) -> np.ndarray:
    """A numpy array from a numpy array, a sequence or a (CPU or GPU) torch tensor."""
    if hasattr(values, "detach"):
        tensor = values.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    try:
        return np.asarray(values)
    except Exception as error:  # noqa: BLE001 - re-raised with context
        raise TypeError(f"{name} must be an array or tensor, got {type(values).__name__}") from error


def check_finite(values: np.ndarray, name: str) -> None:
    """Raise if ``values`` holds NaN or infinity, naming the first bad element."""
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has a non-finite value ({values[where]}) at index {where}; "
            "check the model outputs for NaN/inf"
        )


def check_scoremaps(scoremaps: Any) -> np.ndarray:
    """Float score maps [B, H, W] in [0, 1]."""
    maps = as_numpy(scoremaps, "scoremaps")
    if maps.ndim != 3:
        raise ValueError(f"scoremaps must have shape [B, H, W], got shape {maps.shape}")
    if not np.issubdtype(maps.dtype, np.floating):
        raise ValueError(f"scoremaps must be floats in [0, 1], got dtype {maps.dtype}")
    if min(maps.shape[1:]) < 1:
        raise ValueError(f"scoremaps must not be empty, got shape {maps.shape}")
    check_finite(maps, "scoremaps")
    outside = (maps < 0) | (maps > 1)
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(
            f"scoremaps must lie in [0, 1]; value {maps[where]} at index {where} "
            "(min-max normalise each map first)"
        )
    return maps


def check_boxes(gt_boxes: Sequence[Any], count: int) -> list[np.ndarray]:
    """GT boxes: one (n_i >= 1, 4) array of x0, y0, x1, y1 per image, as int64 pixel
    boxes (fractional coordinates are truncated, like the reference's ``int()``)."""
    if isinstance(gt_boxes, np.ndarray) and gt_boxes.ndim == 3:
        gt_boxes = list(gt_boxes)
    if len(gt_boxes) != count:
        raise ValueError(
            f"got {len(gt_boxes)} GT box lists for {count} images; pass one (n_i, 4) array per image"
        )
    checked = []
    for index, boxes in enumerate(gt_boxes):
        boxes = as_numpy(boxes, f"gt_boxes[{index}]")
        if boxes.ndim == 1 and boxes.size == 4:
            boxes = boxes[None]
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(
                f"gt_boxes[{index}] must have shape (n, 4) as x0, y0, x1, y1, got shape {boxes.shape}"
            )
        if boxes.shape[0] == 0:
            raise ValueError(
                f"gt_boxes[{index}] is empty: every image needs at least one "
                "GT box (drop images without boxes before evaluating)"
            )
        check_finite(boxes.astype(np.float64), f"gt_boxes[{index}]")
        if (boxes < 0).any():
            row = int(np.flatnonzero((boxes < 0).any(axis=1))[0])
            raise ValueError(f"gt_boxes[{index}][{row}] = {boxes[row].tolist()} has a negative coordinate")
        # pixel boxes: fractional coordinates are truncated, as the reference's
        # resize_bbox does with int()
        boxes = np.trunc(boxes).astype(np.int64)
        inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if inverted.any():
            row = int(np.flatnonzero(inverted)[0])
            raise ValueError(
                f"gt_boxes[{index}][{row}] = {boxes[row].tolist()} has x1 < x0 or "
                "y1 < y0; boxes are x0, y0, x1, y1"
            )
        checked.append(np.ascontiguousarray(boxes))
    return checked


def check_thresholds(iou_thresholds: Sequence[int]) -> tuple[int, ...]:
    """IoU thresholds in percent, distinct, in (0, 100]."""
    values = tuple(int(t) for t in iou_thresholds)
    if not values or len(set(values)) != len(values) or any(not 0 < t <= 100 for t in values):
        raise ValueError(
            f"iou_thresholds must be distinct percentages in (0, 100], got {tuple(iou_thresholds)}"
        )
    if any(t != v for t, v in zip(iou_thresholds, values)):
        raise ValueError(f"iou_thresholds are integer percentages (e.g. 50), got {iou_thresholds}")
    return values
