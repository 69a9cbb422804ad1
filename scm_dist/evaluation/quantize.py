"""The protocol's CAM thresholds and the uint8 image the box search thresholds.

Everything here is the literal protocol (docs/EVALUATION.md, Choe et al. 2020): the map is
quantised to ``uint8(255 * map)`` (truncation) and a CAM threshold ``tau`` keeps the
pixels ``> int(tau * max(uint8 map))``.
"""

from __future__ import annotations

import numpy as np


def cam_thresholds(interval: float) -> np.ndarray:
    """The CAM thresholds ``np.arange(0, 1, interval)`` as doubles (0, 0.01, ..., 0.99)."""
    if not 0.0 < interval < 1.0:
        raise ValueError(f"cam_curve_interval must be in (0, 1), got {interval}")
    return np.arange(0, 1, interval)


def quantize(scoremap: np.ndarray) -> np.ndarray:
    """``uint8(255 * map)`` in the map's own float precision, as the protocol does."""
    return (scoremap * 255).astype(np.uint8)


def integer_thresholds(taus: np.ndarray, quantized: np.ndarray) -> np.ndarray:
    """``int(tau * max(uint8 map))`` for every tau: a pixel is foreground when ``> it``."""
    return (taus * quantized.max()).astype(np.int64)
