"""From a model's low-resolution class map to the protocol's score map in the eval frame."""

from __future__ import annotations

import cv2
import numba as nb
import numpy as np

from .contours import largest_contour_box
from .quantize import integer_thresholds, quantize

# The resize each protocol's reference code applies before normalising (docs/EVALUATION.md):
# wsolevaluation's inference.py resizes with cv2.INTER_CUBIC, the SCM release's
# resize_cam with cv2.resize's default, bilinear.
INTERPOLATION = {"wsol": cv2.INTER_CUBIC, "scm-release": cv2.INTER_LINEAR}


def _interpolation(protocol: str) -> int:
    if protocol not in INTERPOLATION:
        raise ValueError(f"protocol must be one of {tuple(INTERPOLATION)}, got {protocol!r}")
    return INTERPOLATION[protocol]


def resize_map(
    class_map: np.ndarray, size: tuple[int, int], protocol: str = "wsol", out: np.ndarray | None = None
) -> np.ndarray:
    """The protocol's resize (cv2.resize, :data:`INTERPOLATION`) of a float map [h, w] to
    ``size`` = (H, W), float32 (into ``out`` when given: contiguous float32 [H, W])."""
    height, width = size
    return cv2.resize(
        np.ascontiguousarray(class_map, np.float32),
        (width, height),
        dst=out,
        interpolation=_interpolation(protocol),
    )


def scoremap(class_map: np.ndarray, size: tuple[int, int], protocol: str = "wsol") -> np.ndarray:
    """The protocol's score map (float32): resized, then normalised as wsolevaluation's
    ``normalize_scoremap``: a map with a NaN or a constant map becomes all zeros, else
    subtract the min and divide by the (new) max, so bicubic overshoot below the
    original minimum or above its maximum is part of the range."""
    resized = resize_map(class_map, size, protocol)
    low, high = resized.min(), resized.max()
    if not low < high:  # constant, or NaN (every comparison with NaN is false)
        return np.zeros_like(resized)
    resized -= low
    resized /= resized.max()
    return resized


@nb.njit(cache=True)
def _normalized_uint8(resized: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """Per map of ``resized`` [n, H, W] with its ``lows`` and ``highs``:
    ``uint8(255 * (map - min) / max(map - min))`` with the reference's float32 steps
    (the shifted maximum is exactly ``fl(max - min)``)."""
    out = np.zeros(resized.shape, np.uint8)
    scale = np.float32(255)
    for m in range(resized.shape[0]):
        low = lows[m]
        if not low < highs[m]:  # constant or NaN: all zeros
            continue
        span = highs[m] - low
        flat = resized[m].ravel()
        target = out[m].ravel()
        for i in range(flat.size):
            target[i] = np.uint8((flat[i] - low) / span * scale)
    return out


def quantized_scoremaps(class_maps: np.ndarray, size: tuple[int, int], protocol: str = "wsol") -> np.ndarray:
    """``quantize(scoremap(m, size, protocol))`` of every map of ``class_maps`` [n, h, w]
    (same float32 arithmetic): uint8 [n, H, W]."""
    resized = np.empty((len(class_maps), *size), np.float32)
    for class_map, target in zip(class_maps, resized):
        resize_map(class_map, size, protocol, target)
    return _normalized_uint8(resized, resized.min(axis=(1, 2)), resized.max(axis=(1, 2)))


def localization_box(
    class_map: np.ndarray, size: tuple[int, int], cam_threshold: float, protocol: str = "wsol"
) -> tuple[np.ndarray, np.ndarray]:
    """Score map and the protocol's largest-contour box at one CAM threshold."""
    scores = scoremap(class_map, size, protocol)
    quantized = quantize(scores)
    level = int(integer_thresholds(np.array([cam_threshold]), quantized)[0])
    return scores, largest_contour_box(quantized, level)
