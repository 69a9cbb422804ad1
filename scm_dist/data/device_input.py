"""Device-side input: uint8 batches cross to the accelerator, the float work happens there.

Two paths, both ending in :func:`normalize` on the device:

* CPU decode (today's loaders' geometry): the loader hands uint8 ``[B, 3, crop, crop]``
  crops (unflipped) and a per-sample flip flag; :func:`to_device` moves them (pinned
  memory, ``non_blocking``) and :func:`normalize` flips, converts and applies timm's
  ImageNet mean/std there. A quarter of the bytes of float32 cross the bus.
* GPU decode (``data.decode: gpu``, WebDataset): the loader hands the JPEG bytes and the
  :class:`~scm_dist.data.transforms.CropParams` it drew; :func:`decode_jpegs` decodes the
  whole batch with ``torchvision.io.decode_jpeg(device=...)`` (nvJPEG on CUDA), and
  :func:`train_crops` / :func:`eval_resize` apply the CPU path's geometry on the device:
  resize to ``resize x resize`` (bilinear, half-pixel centres, no antialias: what
  OpenCV's ``INTER_LINEAR`` does), crop, round to uint8.

The same functions run on CPU (``device="cpu"``) so tests keep them alive.

Wiring (not done here; the loaders and the train step own it):

* ``webdataset_loader._TrainStream._decode``: draw ``CropParams`` as today but crop with
  ``flip=False`` and yield the flags beside the uint8 batch (``data.decode: cpu``), or
  yield the raw ``.jpg`` bytes and the params without decoding (``data.decode: gpu``);
  ``WebDatasetTrainLoader._batches`` then yields uint8 (no ``normalize_batch``).
* the engine's train step: ``normalize(to_device(images, device), flips)``, or for GPU
  decode ``normalize(train_crops(decode_jpegs(jpegs, device), params, ...))``, before the
  forward (the backends' ``forward`` then takes a device tensor as is).
* the eval loaders likewise with :func:`eval_resize` (no flip).
* FFCV: end its image pipeline with ``ToTensor(), ToDevice(device, non_blocking=True),
  ToTorchImage()`` on uint8 and call :func:`normalize` (instead of ``NormalizeImage`` /
  float32 CHW on the CPU).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.io import ImageReadMode, decode_jpeg

from .transforms import CropParams

DECODES = ("cpu", "gpu")


def to_device(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Move a uint8 batch to ``device``: through pinned memory and ``non_blocking`` on CUDA."""
    device = torch.device(device)
    if device.type == "cuda" and not images.is_pinned():
        images = images.pin_memory()
    return images.to(device, non_blocking=device.type == "cuda")


def normalize(
    images: torch.Tensor,
    flip: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(x - mean) / std`` with timm's ImageNet mean/std, in ``dtype``, on the images'
    device, from uint8 ``[B, 3, H, W]``; samples whose ``flip`` flag is set are mirrored
    left-right first."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 batch [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    if flip is not None:
        flip = flip.to(images.device, non_blocking=True).view(-1, 1, 1, 1)
        images = torch.where(flip, images.flip(-1), images)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_DEFAULT_STD, device=images.device).view(1, 3, 1, 1) * 255
    return ((images.float() - mean) / std).to(dtype)


def decode_jpegs(data: Sequence[bytes], device: torch.device | str) -> list[torch.Tensor]:
    """RGB uint8 ``[3, H, W]`` images on ``device``, decoded as one batch (nvJPEG on CUDA)."""
    encoded = [torch.frombuffer(bytearray(item), dtype=torch.uint8) for item in data]
    return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=torch.device(device))


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """float ``[1, 3, size, size]`` of uint8 ``[3, H, W]``: bilinear, half-pixel centres, no
    antialias (OpenCV's INTER_LINEAR, which the CPU path uses)."""
    return F.interpolate(
        image.unsqueeze(0).float(), size=(size, size), mode="bilinear", align_corners=False, antialias=False
    )


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return images.round_().clamp_(0, 255).to(torch.uint8)


def train_crops(
    images: Sequence[torch.Tensor],
    params: Sequence[CropParams],
    resize_size: int,
    crop_size: int,
    apply_flip: bool = True,
) -> torch.Tensor:
    """uint8 ``[B, 3, crop, crop]`` on the images' device: each image resized to
    ``resize x resize``, cropped at its params (and flipped when ``apply_flip`` and its
    flag is set; otherwise leave the flip to :func:`normalize`)."""
    if len(images) != len(params):
        raise ValueError(f"{len(images)} images but {len(params)} crop parameters")
    crops = []
    for image, p in zip(images, params):
        window = _resize(image, resize_size)[..., p.top : p.top + crop_size, p.left : p.left + crop_size]
        crops.append(window.flip(-1) if apply_flip and p.flip else window)
    return _to_uint8(torch.cat(crops))


def eval_resize(images: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """uint8 ``[B, 3, size, size]``: every image resized to ``size x size`` (the eval path)."""
    return _to_uint8(torch.cat([_resize(image, size) for image in images]))


def flip_flags(params: Sequence[CropParams]) -> torch.Tensor:
    """The per-sample flip flags of a batch's crop parameters, bool ``[B]``."""
    return torch.tensor([p.flip for p in params], dtype=torch.bool)
