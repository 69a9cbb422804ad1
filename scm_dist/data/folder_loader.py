"""The baseline: an image folder ``root/<class>/*.jpg`` read the way the SCM release read
it (PIL, torchvision transforms per sample, DistributedSampler, default collation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader, DistributedSampler
from torchvision import transforms
from torchvision.datasets import ImageFolder

from scm_dist.config import DataConfig

from .base import TrainLoader, loader_workers
from .device_input import HostImages, Normalized
from .shards import FORMAT_FOLDER


class _IndexedImageFolder(ImageFolder):
    """ImageFolder that also returns each sample's index."""

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        image, label = super().__getitem__(index)
        return image, label, index


def release_train_transform(resize_size: int, crop_size: int) -> transforms.Compose:
    """The SCM release's train transform on PIL images."""
    return transforms.Compose(
        [
            transforms.Resize((resize_size, resize_size)),
            transforms.RandomCrop(crop_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
        ]
    )


class FolderTrainLoader(TrainLoader):
    """Train batches from an image folder: DistributedSampler order (seeded by ``(seed,
    epoch)``, ranks disjoint, the tail left out). Resume: exact order at batch granularity
    for the same layout (skipped indices are never loaded); crops and flips are not
    reproduced; ``skip_corrupt`` does not apply (a broken file stops the run)."""

    def __init__(self, cfg: DataConfig, directory: str, rank: int, world_size: int, seed: int) -> None:
        self.dataset = _IndexedImageFolder(
            directory, transform=release_train_transform(cfg.resize_size, cfg.crop_size)
        )
        super().__init__(
            fmt=FORMAT_FOLDER,
            num_classes=len(self.dataset.classes),
            steps_per_epoch=len(self.dataset) // (world_size * cfg.batch_size),
            rank=rank,
            world_size=world_size,
            batch_size=cfg.batch_size,
            seed=seed,
        )
        self.workers = loader_workers(cfg.workers)
        self.last_ids: list[str] = []
        self._sampler: DistributedSampler[int] = DistributedSampler(
            self.dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )

    def _batches(self, epoch: int, consumed: int) -> Iterator[tuple[HostImages, torch.Tensor]]:
        self._sampler.set_epoch(epoch)
        order = list(self._sampler)[consumed * self.batch_size : self.steps_per_epoch * self.batch_size]
        loader: DataLoader[tuple[Any, int, int]] = DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=order, num_workers=self.workers, drop_last=True
        )
        root = Path(self.dataset.root)
        for images, labels, indices in loader:
            self.last_ids = [
                str(Path(self.dataset.samples[i][0]).relative_to(root)) for i in indices.tolist()
            ]
            yield Normalized(images), labels
