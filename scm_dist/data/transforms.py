"""Image transforms of the SCM recipe on uint8 arrays (OpenCV), boxes kept aligned.

Train: resize to ``resize x resize`` (aspect ratio not kept), random ``crop x crop``
window, horizontal flip with probability 1/2. Eval: resize to ``size x size`` and the
boxes rescaled into that frame and clipped to ``[0, size - 1]`` (the "+1" pixel
convention of the metrics). Images stay uint8 ``[3, H, W]``: a whole batch crosses to the
device as uint8 and is normalised there (:mod:`scm_dist.data.device_input`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch


def decode_jpeg(data: bytes) -> np.ndarray | None:
    """RGB uint8 ``[H, W, 3]`` of JPEG (or PNG) bytes, or None when undecodable."""
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR_RGB)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize ``[H, W, 3]`` to ``size x size`` (bilinear, as torchvision's Resize)."""
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class CropParams:
    """Where the train crop sits in the resized frame, and whether it is flipped."""

    top: int
    left: int
    flip: bool


def sample_crop(rng: np.random.Generator, resize_size: int, crop_size: int) -> CropParams:
    """Uniform crop offset in ``[0, resize - crop]`` and a fair coin for the flip."""
    if crop_size > resize_size:
        raise ValueError(
            f"crop_size {crop_size} is larger than resize_size {resize_size}; "
            "set data.crop_size <= data.resize_size"
        )
    top, left = rng.integers(0, resize_size - crop_size + 1, size=2)
    return CropParams(int(top), int(left), bool(rng.integers(0, 2)))


def train_transform(image: np.ndarray, params: CropParams, resize_size: int, crop_size: int) -> torch.Tensor:
    """uint8 ``[3, crop, crop]``: resize, crop at ``params``, flip when ``params.flip``."""
    frame = resize(image, resize_size)
    window = frame[params.top : params.top + crop_size, params.left : params.left + crop_size]
    if params.flip:
        window = window[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(window.transpose(2, 0, 1)))


def rescale_boxes(boxes: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """Boxes ``[n, 4]`` (x0, y0, x1, y1) of a ``width x height`` image in the ``size x size``
    frame, clipped to ``[0, size - 1]``."""
    scale = np.array([size / width, size / height, size / width, size / height])
    scaled = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale
    return np.clip(scaled, 0, size - 1).astype(np.float32)


def eval_transform(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``[3, size, size]``; its boxes go through :func:`rescale_boxes`."""
    return torch.from_numpy(np.ascontiguousarray(resize(image, size).transpose(2, 0, 1)))
