"""Device-side input: uint8 batches cross to the accelerator, the float work happens there.

A train loader hands each batch's images over as :class:`HostImages`; the train step calls
``images.to_model(device)`` and gets the model's float32 input on the device:

* :class:`Pixels` (WebDataset with ``data.decode: cpu``, FFCV): uint8 ``[B, 3, crop, crop]``
  crops, flipped by the worker (free there: it folds into the HWC to CHW copy the worker
  makes anyway; on the device it would cost an extra pass, which on a CPU host is 50% more
  time in the main process). They cross through pinned memory (``non_blocking``) and
  :func:`normalize` converts and applies timm's ImageNet mean/std on the device: a quarter
  of the bytes of float32 cross the bus.
* :class:`Jpegs` (WebDataset with ``data.decode: gpu``): the JPEG bytes and the
  :class:`~scm_dist.data.transforms.CropParams` the worker drew; :func:`decode_jpegs`
  decodes the whole batch with ``torchvision.io.decode_jpeg(device=...)`` (nvJPEG on CUDA)
  and :func:`train_crops` applies the CPU path's geometry there: resize to ``resize x
  resize`` (bilinear, half-pixel centres, no antialias: what OpenCV's ``INTER_LINEAR``
  does), crop, flip, round to uint8.
* :class:`Normalized`: float32 batches normalised by the loader (the image-folder
  baseline, which keeps the SCM release's torchvision transforms).

Eval batches carry uint8 images too (:attr:`~scm_dist.data.base.EvalBatch.images`); the
evaluation normalises them on its device. Everything here also runs on CPU
(``device="cpu"``), which is how the tests keep it alive.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.io import ImageReadMode, decode_jpeg

from .shards import ShardError
from .transforms import CropParams

DECODES = ("cpu", "gpu")


def to_device(images: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Move a host batch to ``device``: through pinned memory and ``non_blocking`` on CUDA."""
    device = torch.device(device)
    if device.type == "cuda" and not images.is_pinned():
        images = images.pin_memory()
    return images.to(device, non_blocking=device.type == "cuda")


def pinned_copy(images: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of a host tensor, in pinned memory when CUDA is there (one copy where
    ``.contiguous().pin_memory()`` would make two)."""
    out = torch.empty(images.shape, dtype=images.dtype, pin_memory=torch.cuda.is_available())
    return out.copy_(images)


def normalize(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(x - mean) / std`` with timm's ImageNet mean/std, in ``dtype``, on the images'
    device, from uint8 ``[B, 3, H, W]``."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a uint8 batch [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_DEFAULT_STD, device=images.device).view(1, 3, 1, 1) * 255
    return images.float().sub_(mean).div_(std).to(dtype)


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
    images: Sequence[torch.Tensor], params: Sequence[CropParams], resize_size: int, crop_size: int
) -> torch.Tensor:
    """uint8 ``[B, 3, crop, crop]`` on the images' device: each image resized to
    ``resize x resize``, cropped at its params and flipped when its flag is set."""
    if len(images) != len(params):
        raise ValueError(f"{len(images)} images but {len(params)} crop parameters")
    crops = []
    for image, p in zip(images, params):
        window = _resize(image, resize_size)[..., p.top : p.top + crop_size, p.left : p.left + crop_size]
        crops.append(window.flip(-1) if p.flip else window)
    return _to_uint8(torch.cat(crops))


def eval_resize(images: Sequence[torch.Tensor], size: int) -> torch.Tensor:
    """uint8 ``[B, 3, size, size]``: every image resized to ``size x size`` (the eval path)."""
    return _to_uint8(torch.cat([_resize(image, size) for image in images]))


class HostImages(ABC):
    """A train batch's images as the loader hands them over, before the device."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def to_model(self, device: torch.device | str) -> torch.Tensor:
        """The model's input: float32 ``[B, 3, crop, crop]``, normalised, on ``device``."""

    def pin_memory(self) -> HostImages:
        """What the DataLoader's pin-memory thread calls (tensors pinned, bytes as they are)."""
        return self


@dataclass
class Pixels(HostImages):
    """uint8 ``[B, 3, H, W]`` crops, flipped already."""

    pixels: torch.Tensor

    def __len__(self) -> int:
        return self.pixels.shape[0]

    def pin_memory(self) -> Pixels:
        return Pixels(self.pixels.pin_memory())

    def to_model(self, device: torch.device | str) -> torch.Tensor:
        return normalize(to_device(self.pixels, device))


@dataclass
class Jpegs(HostImages):
    """Encoded JPEGs, their samples' keys and the crops drawn for them (``data.decode: gpu``)."""

    data: list[bytes]
    keys: list[str]
    crops: list[CropParams]
    resize_size: int
    crop_size: int

    def __len__(self) -> int:
        return len(self.data)

    def to_model(self, device: torch.device | str) -> torch.Tensor:
        try:
            decoded = decode_jpegs(self.data, device)
        except RuntimeError as err:
            shown = ", ".join(self.keys[:3]) + (", ..." if len(self.keys) > 3 else "")
            raise ShardError(
                f"data.decode=gpu could not decode the batch of samples {shown} on {device} "
                f"({str(err).splitlines()[0]}); find the sample with `scm-shards verify --deep`, "
                "or train with data.decode=cpu and data.skip_corrupt=true"
            ) from err
        return normalize(train_crops(decoded, self.crops, self.resize_size, self.crop_size))


@dataclass
class Normalized(HostImages):
    """float32 ``[B, 3, H, W]`` already normalised by the loader (the image-folder baseline)."""

    images: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def pin_memory(self) -> Normalized:
        return Normalized(self.images.pin_memory())

    def to_model(self, device: torch.device | str) -> torch.Tensor:
        return to_device(self.images, device)
