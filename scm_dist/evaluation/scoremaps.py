"""From a model's low-resolution class map to the protocol's score map in the eval frame."""
from __future__ import annotations

import cv2
import numba as nb
import numpy as np

from .contours import largest_contour_box
from .quantize import integer_thresholds, quantize


def resize_map(class_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (cv2.resize) of a float map [h, w] to ``size`` = (H, W), float32."""
    height, width = size
    return cv2.resize(np.ascontiguousarray(class_map, np.float32), (width, height),
                      interpolation=cv2.INTER_LINEAR)


def scoremap(class_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The protocol's score map: resized, then min-max normalised to [0, 1] (float32).

    A constant map becomes all zeros (as in the reference implementation).
    """
    resized = resize_map(class_map, size)
    low, high = resized.min(), resized.max()
    if low == high:
        return np.zeros_like(resized)
    resized -= low
    resized /= resized.max()
    return resized


@nb.njit(cache=True)
def _normalized_uint8(resized: np.ndarray) -> np.ndarray:
    """``uint8(255 * (map - min) / max(map - min))`` with the reference's float32 steps
    (the shifted maximum is exactly ``fl(max - min)``)."""
    flat = resized.ravel()
    low = flat[0]
    high = flat[0]
    for value in flat:
        low = min(low, value)
        high = max(high, value)
    out = np.zeros(flat.size, np.uint8)
    if low == high:
        return out.reshape(resized.shape)
    span = high - low
    scale = np.float32(255)
    for i in range(flat.size):
        out[i] = np.uint8((flat[i] - low) / span * scale)
    return out.reshape(resized.shape)


def quantized_scoremap(class_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``quantize(scoremap(class_map, size))`` in one pass (same float32 arithmetic)."""
    return _normalized_uint8(resize_map(class_map, size))


def localization_box(class_map: np.ndarray, size: tuple[int, int],
                     cam_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Score map and the protocol's largest-contour box at one CAM threshold."""
    scores = scoremap(class_map, size)
    quantized = quantize(scores)
    level = int(integer_thresholds(np.array([cam_threshold]), quantized)[0])
    return scores, largest_contour_box(quantized, level)
