"""WebDataset tar shards to one rank: train (split or resampled) and exact-once eval.

Train, default mode: each epoch the shards are permuted with ``(seed, epoch)`` (the same on
every rank), their samples concatenated, and rank ``r`` takes the ``steps_per_epoch *
batch_size`` samples starting at ``r * steps_per_epoch * batch_size`` (disjoint ranks; the
tail that does not fill a global batch is left out, a different one each epoch). Each
DataLoader worker takes a contiguous whole number of batches of that range and shuffles
it through a buffer seeded by ``(seed, epoch, rank, worker)``. Resampled mode: each worker
draws shards with replacement (seeded the same way) until it has its batches; epochs hold
``samples_per_epoch`` samples, ranks are not disjoint.

Each worker's stream is a ``webdataset.DataPipeline`` of webdataset's own stages: a shard
list (``ResampledShards`` in resampled mode), the tar expansion (``tar_file_expander``,
``group_by_keys``, in :mod:`.streams`), ``shuffle`` with a seeded ``random.Random``,
``slice`` (the resume point) and ``batched``; the decode step (``_prepare`` per train
sample, run by the batch collation so that a skipped corrupt sample is counted in its batch;
``_sample`` per eval sample, in ``map``) is ours, not ``wds.decode``: it decodes with
libjpeg-turbo / OpenCV straight into the uint8 crop (and flip) seeded by the sample key,
normalised later on the device (:class:`~scm_dist.data.device_input.Pixels`); with ``data.decode: gpu``
it checks the JPEG header and hands the bytes and crop over undecoded
(:class:`~scm_dist.data.device_input.Jpegs`). Who reads what stays ours (:mod:`.split`):
webdataset's ``split_by_node`` / ``split_by_worker`` hand out whole shards round robin, so
with shards of different sizes (the last one is short) ranks would get different sample
counts (unequal steps, a DDP hang) and eval could not cover the split exactly once for world
sizes that do not divide the shard count. Our shard list is the epoch's shard order cut at sample positions.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from data_shards.schema import (
    FORMAT_WEBDATASET,
    WDS_INFO_KEY,
    WDS_LABEL_KEY,
    boxes_array,
    decode_sample_json,
)
from scm_dist.config import DataConfig

from .base import EvalBatch, TrainLoader, loader_workers
from .decode import EVAL_HINT, decode_sample, encoded_sample, sample_member
from .device_input import HostImages, Jpegs, Pixels
from .shards import ShardError, ShardSet, open_shards
from .split import Segment, balanced_range, batches_done, logical_worker, segments, worker_batches
from .streams import segment_samples, worker_identity
from .transforms import CropParams, eval_transform, rescale_boxes, sample_crop, train_transform

PREFETCH_BATCHES = 4  # per worker


def _seeded(*parts: int) -> random.Random:
    """The ``random.Random`` webdataset's stages take, seeded by ``parts``."""
    return random.Random(int(np.random.SeedSequence(list(parts)).generate_state(1)[0]))


def _listed(shards: ShardSet, spans: list[Segment]) -> list[dict[str, Any]]:
    """A webdataset shard list (``url`` dicts) with the part of each shard to read."""
    return [{"url": shards.url(span.shard), "segment": span} for span in spans]


def _data_loader(dataset: IterableDataset, workers: int) -> DataLoader:
    # no cv2.setNumThreads in the workers: after a fork it waits forever on the thread pool
    # the parent's OpenCV calls left behind (cv2 calls themselves are fork-safe)
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=PREFETCH_BATCHES if workers else None,
        pin_memory=torch.cuda.is_available(),  # uint8 batches cross to the GPU from pinned memory
    )


class _TrainStream(IterableDataset):
    """Per-worker batches ``(HostImages, labels, keys, skipped)`` of one rank's epoch."""

    def __init__(
        self, shards: ShardSet, cfg: DataConfig, rank: int, world_size: int, seed: int, steps: int
    ) -> None:
        self.shards, self.cfg = shards, cfg
        self.rank, self.world_size, self.seed, self.steps = rank, world_size, seed, steps
        self.epoch = self.consumed = 0

    def _shard_list(self, worker: int, quotas: list[int]) -> Iterable[dict[str, Any]]:
        """Resampled: webdataset's ``ResampledShards``, seeded (whole shards, without end).
        Split: this worker's part of this rank's range of the epoch's shard permutation."""
        if self.cfg.resampled:
            urls = [self.shards.url(i) for i in range(len(self.shards.counts))]
            seed = _seeded(self.seed, self.epoch, self.rank, worker, 1).getrandbits(63)
            return wds.ResampledShards(urls, seed=seed, worker_seed=lambda: 0, deterministic=True)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards.counts))
        start = (self.rank * self.steps + sum(quotas[:worker])) * self.cfg.batch_size
        stop = start + quotas[worker] * self.cfg.batch_size
        return _listed(self.shards, segments(order.tolist(), self.shards.counts, start, stop))

    def _prepare(self, sample: dict[str, Any]) -> tuple[Any, CropParams, int, str] | None:
        """(uint8 crop, or with ``data.decode: gpu`` the JPEG bytes), the crop parameters
        seeded by the sample key, label and key; None for a skipped sample."""
        key = sample["__key__"]
        cfg = self.cfg
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode())])
        if cfg.decode == "gpu":
            image: Any = encoded_sample(sample, cfg.skip_corrupt)
        else:
            image = decode_sample(sample, cfg.skip_corrupt)
        if image is None:
            return None
        params = sample_crop(rng, cfg.resize_size, cfg.crop_size)
        if cfg.decode == "cpu":
            image = train_transform(image, params, cfg.resize_size, cfg.crop_size)
        return image, params, int(sample_member(sample, WDS_LABEL_KEY)), key

    def _collate(self, group: list[dict[str, Any]]) -> tuple[HostImages, torch.Tensor, list[str], int]:
        """A batch of raw samples prepared (the undecodable ones skipped and counted)."""
        prepared = [p for p in map(self._prepare, group) if p is not None]
        if not prepared:
            raise ShardError(
                f"a whole batch of {len(group)} samples (from "
                f"{group[0]['__url__']}) is undecodable; check the shards"
            )
        images, params, labels, keys = (list(column) for column in zip(*prepared))
        host: HostImages
        if self.cfg.decode == "gpu":
            host = Jpegs(images, keys, params, self.cfg.resize_size, self.cfg.crop_size)
        else:
            host = Pixels(torch.stack(images))
        return host, torch.tensor(labels, dtype=torch.int64), keys, len(group) - len(prepared)

    def __iter__(self) -> Iterator[tuple[HostImages, torch.Tensor, list[str], int]]:
        physical, workers = worker_identity()
        worker = logical_worker(physical, self.consumed, workers)
        quotas = worker_batches(self.steps, workers)
        done = batches_done(self.consumed, workers)[worker]
        batch = self.cfg.batch_size
        shard_list = self._shard_list(worker, quotas)
        pipeline = wds.DataPipeline(
            lambda: iter(shard_list),  # DataPipeline would take a bare list for a list of stages
            segment_samples(self.shards),
            wds.shuffle(
                self.cfg.shuffle_buffer,
                initial=self.cfg.shuffle_buffer,
                rng=_seeded(self.seed, self.epoch, self.rank, worker, 2),
            ),
            # the samples already handed out before a resume pass through undecoded
            wds.slice(done * batch, quotas[worker] * batch),
            wds.batched(batch, collation_fn=self._collate, partial=True),
        )
        return iter(pipeline)


class WebDatasetTrainLoader(TrainLoader):
    """Train batches from WebDataset shards (see the module docstring for the order).

    Resume: exact at batch granularity for the same layout (world size, batch size,
    workers, seed, shuffle buffer, mode): the same samples, in the same order, with the same
    crops and flips (they are seeded per sample by ``(seed, epoch, key)``). The samples a
    worker had already handed out are re-read from the tar stream and passed through the
    shuffle buffer but not decoded. A sample skipped as corrupt leaves its batch one short.
    """

    def __init__(self, cfg: DataConfig, directory: str, rank: int, world_size: int, seed: int) -> None:
        shards = open_shards(directory, FORMAT_WEBDATASET, cfg)
        total = (cfg.samples_per_epoch or shards.total) if cfg.resampled else shards.total
        steps = total // (world_size * cfg.batch_size)
        super().__init__(
            fmt=FORMAT_WEBDATASET,
            num_classes=len(shards.manifest.classes),
            steps_per_epoch=steps,
            rank=rank,
            world_size=world_size,
            batch_size=cfg.batch_size,
            seed=seed,
        )
        self.workers = loader_workers(cfg.workers)
        self.last_ids: list[str] = []
        self._cfg = cfg
        self._stream = _TrainStream(shards, cfg, rank, world_size, seed, steps)

    def layout(self) -> dict[str, Any]:
        return {
            **super().layout(),
            "workers": self.workers,
            "resampled": self._cfg.resampled,
            "shuffle_buffer": self._cfg.shuffle_buffer,
        }

    def _batches(self, epoch: int, consumed: int) -> Iterator[tuple[HostImages, torch.Tensor]]:
        self._stream.epoch, self._stream.consumed = epoch, consumed
        for images, labels, keys, skipped in _data_loader(self._stream, self.workers):
            self._count_skipped(skipped)
            self.last_ids = keys
            yield images, labels


class _EvalStream(IterableDataset):
    """Per-worker eval batches (uint8 images) of one rank's contiguous range."""

    def __init__(self, shards: ShardSet, cfg: DataConfig, rank: int, world_size: int) -> None:
        self.shards, self.cfg = shards, cfg
        self.start, self.stop = balanced_range(shards.total, world_size, rank)

    def _sample(self, sample: dict[str, Any]) -> tuple[torch.Tensor, np.ndarray, Any]:
        info = decode_sample_json(sample_member(sample, WDS_INFO_KEY))
        image = decode_sample(sample, False, EVAL_HINT, json_key=info.key)
        assert image is not None  # skip_corrupt=False: a corrupt image raises instead
        size = self.cfg.eval_size
        return (
            eval_transform(image, size),
            rescale_boxes(boxes_array(info), info.width, info.height, size),
            info,
        )

    @staticmethod
    def _collate(group: list[tuple[torch.Tensor, np.ndarray, Any]]) -> EvalBatch:
        images, boxes, infos = zip(*group)
        return EvalBatch(
            images=torch.stack(images),
            labels=torch.tensor([i.label for i in infos], dtype=torch.int64),
            boxes=[torch.from_numpy(b) for b in boxes],
            keys=[i.key for i in infos],
            sample_ids=torch.tensor([i.sample_id for i in infos]),
        )

    def __iter__(self) -> Iterator[EvalBatch]:
        worker, workers = worker_identity()
        lo, hi = balanced_range(self.stop - self.start, workers, worker)
        spans = segments(range(len(self.shards.counts)), self.shards.counts, self.start + lo, self.start + hi)
        shard_list = _listed(self.shards, spans)
        pipeline = wds.DataPipeline(
            lambda: iter(shard_list),
            segment_samples(self.shards),
            wds.map(self._sample),
            wds.batched(self.cfg.eval_batch_size, collation_fn=self._collate, partial=True),
        )
        return iter(pipeline)


class WebDatasetEvalLoader:
    """Eval batches of this rank's share: rank ``r`` of ``w`` reads samples
    ``[N r / w, N (r+1) / w)`` of the split, each worker a contiguous part of that."""

    def __init__(self, cfg: DataConfig, directory: str, rank: int, world_size: int) -> None:
        shards = open_shards(directory, FORMAT_WEBDATASET, cfg)
        self.format = FORMAT_WEBDATASET
        self.num_classes = len(shards.manifest.classes)
        self.total_samples = shards.total
        self.workers = loader_workers(cfg.workers)
        self._stream = _EvalStream(shards, cfg, rank, world_size)
        self.num_samples = self._stream.stop - self._stream.start

    def __iter__(self) -> Iterator[EvalBatch]:
        yield from _data_loader(self._stream, self.workers)
