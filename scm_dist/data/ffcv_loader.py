"""FFCV .beton to one rank: decode, crop and flip inside the FFCV pipeline, to uint8 batches
that are normalised on the device (:mod:`scm_dist.data.device_input`).

FFCV's own ``distributed=True`` wraps torch's ``DistributedSampler`` without arguments, so
it needs ``torch.distributed`` initialised (rank and world size come from the process
group, not from the launcher's environment), pads the order with repeated samples when the
count does not divide (no exact-once eval), and refuses QUASI_RANDOM. This module gives the
Loader its own traversal order instead, built from the explicit rank and world size:

- random: a permutation of all samples seeded by ``(seed, epoch)``, the same on every rank;
- quasi_random: pages permuted with ``(seed, epoch)``, grouped in windows of ``2 *
  batch_size`` pages, samples shuffled inside a window (batches touch few pages, which is
  what makes it fast without the page cache);

rank ``r`` takes block ``r`` of ``steps_per_epoch * batch_size`` samples of that order
(disjoint ranks, the tail left out). Eval reads the balanced contiguous range
``[N r / w, N (r+1) / w)`` in file order. FFCV's workers are threads of one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, cast

import numpy as np
import torch
from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
from ffcv.fields.rgb_image import IMAGE_MODES, SimpleRGBImageDecoder
from ffcv.libffcv import imdecode
from ffcv.loader import Loader
from ffcv.pipeline.allocation_query import AllocationQuery
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.state import State
from ffcv.transforms import Squeeze, ToTensor
from ffcv.traversal_order.base import TraversalOrder

from data_shards.schema import (
    FFCV_BOXES,
    FFCV_FIELDS,
    FFCV_HEIGHT,
    FFCV_IMAGE,
    FFCV_LABEL,
    FFCV_NUM_BOXES,
    FFCV_SAMPLE_ID,
    FFCV_WIDTH,
    FORMAT_FFCV,
    boxes_from_ffcv,
)
from scm_dist.config import DataConfig

from .base import EvalBatch, TrainLoader
from .decode import EVAL_HINT, SKIP_HINT
from .device_input import HostImages, Pixels, pinned_copy
from .shards import ShardError, ShardSet, open_shards
from .split import balanced_range
from .transforms import rescale_boxes

ORDERS = ("random", "quasi_random")
BATCHES_AHEAD = 3


def resized_window(src: np.ndarray, dst: np.ndarray, top: int, left: int, frame: int, flip: bool) -> None:
    """``dst`` (uint8 ``[3, S, S]``) = the S x S window at (top, left) of ``src`` (uint8
    ``[H, W, 3]``) resized to ``frame x frame`` bilinearly (pixel centres aligned, borders
    replicated: OpenCV's INTER_LINEAR), rounded, mirrored when ``flip``. Only the window's
    pixels are computed, in one pass. Numba-compiled inside the FFCV pipeline."""
    height, width = src.shape[0], src.shape[1]
    size = dst.shape[2]
    scale_y, scale_x = height / frame, width / frame
    cols = np.empty(size, dtype=np.int64)
    col_weights = np.empty(size, dtype=np.float32)
    for x in range(size):
        fx = min(max((left + x + 0.5) * scale_x - 0.5, 0.0), width - 1.0)
        cols[x] = int(fx)
        col_weights[x] = fx - cols[x]
    for y in range(dst.shape[1]):
        fy = min(max((top + y + 0.5) * scale_y - 0.5, 0.0), height - 1.0)
        y0 = int(fy)
        y1 = min(y0 + 1, height - 1)
        wy = np.float32(fy - y0)
        for x in range(size):
            x0 = cols[x]
            x1 = min(x0 + 1, width - 1)
            wx = col_weights[x]
            out_x = size - 1 - x if flip else x
            for c in range(3):
                upper = src[y0, x0, c] * (1 - wx) + src[y0, x1, c] * wx
                lower = src[y1, x0, c] * (1 - wx) + src[y1, x1, c] * wx
                dst[c, y, out_x] = np.uint8(min(max(upper * (1 - wy) + lower * wy + 0.5, 0.0), 255.0))


class _ResizedFrameDecoder(SimpleRGBImageDecoder):
    """JPEG decode, then the ``output x output`` window of the image resized to ``frame x
    frame``, flipped at random when ``flip``, as uint8 (normalised later on the device): a
    uniform random window for training (``frame > output``), the whole frame for eval
    (``frame == output``). The same geometry and interpolation as
    :mod:`scm_dist.data.transforms`, without materialising the resized frame.

    Each sample is ``[3, output + 1, output]``: the image, then a status row whose first byte
    is 1 when libjpeg-turbo refused or warned about the JPEG (FFCV fields carry one array
    per sample, and the verdict must reach the host with its image); see :func:`_split_status`.
    """

    def __init__(self, output: int, frame: int, flip: bool) -> None:
        super().__init__()
        self.output, self.frame, self.flip = output, frame, flip

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, tuple]:
        largest = int(self.metadata["width"].max()) * int(self.metadata["height"].max()) * 3
        shape = (3, self.output + 1, self.output)
        return (
            replace(previous_state, jit_mode=True, shape=shape, dtype=np.dtype("<u1")),
            (AllocationQuery(shape, np.dtype("<u1")), AllocationQuery((largest,), np.dtype("<u1"))),
        )

    def generate_code(self) -> Callable:
        mem_read, jpg = self.memory_read, IMAGE_MODES["jpg"]
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        window_c = Compiler.compile(resized_window)
        frame, spare, flip, size = self.frame, self.frame - self.output, self.flip, self.output

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            for dst_ix in my_range(len(batch_indices)):
                field = metadata[batch_indices[dst_ix]]
                image_data = mem_read(field["data_ptr"], storage_state)
                height, width = np.uint32(field["height"]), np.uint32(field["width"])
                destination[dst_ix, 0, size, 0] = 0
                if field["mode"] == jpg:
                    pixels = temp_storage[dst_ix]
                    status = imdecode_c(
                        image_data, pixels, height, width, height, width, 0, 0, 1, 1, False, False
                    )
                    if status != 0:  # libjpeg-turbo failed or warned: mark the sample
                        destination[dst_ix, 0, size, 0] = 1
                        continue
                    pixels = pixels[: 3 * height * width].reshape(height, width, 3)
                else:
                    pixels = image_data.reshape(height, width, 3)
                top = np.random.randint(0, spare + 1)
                left = np.random.randint(0, spare + 1)
                mirror = flip and np.random.random() < 0.5
                window_c(pixels, destination[dst_ix, :, :size], top, left, frame, mirror)
            return destination[: len(batch_indices)]

        cast(Any, decode).is_parallel = True  # FFCV's flag for a prange-compiled stage
        return decode


def _split_status(decoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images ``[B, 3, S, S]``, bool ``[B]`` corrupt) of the decoder's output. The
    corrupt rows are those libjpeg-turbo refused or warned about, the same verdict
    :func:`data_shards.decode.decode_rgb` (``scm-shards verify --deep``) gives."""
    size = decoded.shape[-1]
    return decoded[:, :, :size], decoded[:, 0, size, 0].bool()


def _corrupt_error(path: str, sample_ids: torch.Tensor, hint: str) -> ShardError:
    ids = ", ".join(str(i) for i in sample_ids.tolist()[:5])
    return ShardError(
        f"sample_id {ids} in {path}: corrupt JPEG data (libjpeg-turbo, as `scm-shards verify --deep`); {hint}"
    )


class _RankOrder(TraversalOrder):
    """A traversal order for ``Loader(order=...)``; FFCV calls the instance with itself."""

    def __init__(self, plan: Callable[[Loader], np.ndarray]) -> None:
        # no super().__init__: FFCV builds no state there
        self._plan = plan
        self.loader: Loader | None = None

    def __call__(self, loader: Loader) -> _RankOrder:
        self.loader = loader
        return self

    def sample_order(self, epoch: int) -> np.ndarray:
        return self._plan(self.loader)


def _first_pages(loader: Loader) -> np.ndarray:
    """The first page of the file each sample's data lies in."""
    reader = loader.reader
    table = reader.alloc_table
    pages = np.full(reader.num_samples, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(
        pages, table["sample_id"].astype(np.int64), (table["ptr"] // reader.page_size).astype(np.int64)
    )
    return pages


def quasi_random_order(pages: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    """All samples, page windows in random order, samples shuffled within a window."""
    unique, page_index = np.unique(pages, return_inverse=True)
    window_of = rng.permutation(len(unique))[page_index] // max(window, 1)
    return np.lexsort((rng.random(len(pages)), window_of))


def _int_pipeline() -> list:
    return [IntDecoder(), ToTensor(), Squeeze(1)]


def _disabled(*keep: str) -> dict[str, None]:
    return {name: None for name in FFCV_FIELDS if name not in keep}


def _keeping_torch_threads(make: Callable[[], Any]) -> Any:
    """FFCV sets torch's intra-op threads to its worker count; the trainer's setting wins."""
    threads = torch.get_num_threads()
    try:
        return make()
    finally:
        torch.set_num_threads(threads)


def _iterate(loader: Loader) -> Iterator[tuple]:
    yield from _keeping_torch_threads(lambda: iter(loader))


class FFCVTrainLoader(TrainLoader):
    """Train batches from the FFCV file (see the module docstring for the order).

    Resume: exact at batch granularity for the same layout (world size, batch size, seed,
    order): the same samples in the same order, the skipped ones never read. Crops and
    flips are drawn by FFCV's numba threads and are NOT reproduced. A corrupt JPEG stops
    the run with a :class:`ShardError` naming its sample_id, or with ``skip_corrupt`` is
    dropped from its batch (one short) and counted.
    Batches are uint8, flipped already, copied out of FFCV's reused buffers.
    """

    def __init__(self, cfg: DataConfig, directory: str, rank: int, world_size: int, seed: int) -> None:
        if cfg.ffcv_order not in ORDERS:
            raise ValueError(f"data.ffcv_order {cfg.ffcv_order!r} is not one of {ORDERS}")
        shards = open_shards(directory, FORMAT_FFCV)
        super().__init__(
            fmt=FORMAT_FFCV,
            num_classes=len(shards.manifest.classes),
            steps_per_epoch=shards.total // (world_size * cfg.batch_size),
            rank=rank,
            world_size=world_size,
            batch_size=cfg.batch_size,
            seed=seed,
        )
        self.order = cfg.ffcv_order
        self.last_ids: list[str] = []
        self._skip_corrupt, self._path = cfg.skip_corrupt, str(shards.paths[0])
        self._pages: np.ndarray | None = None
        self._position = (0, 0)
        self._loader = _keeping_torch_threads(
            lambda: Loader(
                str(shards.paths[0]),
                batch_size=cfg.batch_size,
                num_workers=max(cfg.workers, 1),
                os_cache=cfg.ffcv_os_cache,
                order=_RankOrder(self._plan),
                distributed=False,
                seed=seed,
                drop_last=True,
                batches_ahead=BATCHES_AHEAD,
                pipelines={
                    **_disabled(FFCV_IMAGE, FFCV_LABEL, FFCV_SAMPLE_ID),
                    FFCV_IMAGE: [_ResizedFrameDecoder(cfg.crop_size, cfg.resize_size, flip=True), ToTensor()],
                    FFCV_LABEL: _int_pipeline(),
                    FFCV_SAMPLE_ID: _int_pipeline(),
                },
            )
        )

    def layout(self) -> dict[str, Any]:
        return {**super().layout(), "order": self.order}

    def _plan(self, loader: Loader) -> np.ndarray:
        epoch, consumed = self._position
        rng = np.random.default_rng([self.seed, epoch])
        if self.order == "random":
            order = rng.permutation(loader.reader.num_samples)
        else:
            if self._pages is None:
                self._pages = _first_pages(loader)
            order = quasi_random_order(self._pages, 2 * self.batch_size, rng)
        block = self.steps_per_epoch * self.batch_size
        mine = order[self.rank * block : (self.rank + 1) * block]
        return mine[consumed * self.batch_size :].astype(np.uint64)

    def _batches(self, epoch: int, consumed: int) -> Iterator[tuple[HostImages, torch.Tensor]]:
        self._position = (epoch, consumed)
        for decoded, labels, sample_ids in _iterate(self._loader):
            images, bad = _split_status(decoded)
            if bad.any():
                if not self._skip_corrupt or bad.all():
                    hint = "a whole batch is corrupt: check the file" if self._skip_corrupt else SKIP_HINT
                    raise _corrupt_error(self._path, sample_ids[bad], hint)
                self._count_skipped(int(bad.sum()))
                images, labels, sample_ids = images[~bad], labels[~bad], sample_ids[~bad]
            self.last_ids = [str(i) for i in sample_ids.tolist()]
            # copies (FFCV reuses its buffers), in pinned memory. Not FFCV's ToDevice: the
            # corrupt-sample verdict must reach the host to drop and count those samples
            yield Pixels(pinned_copy(images)), labels.clone()


class FFCVEvalLoader:
    """Eval batches of this rank's contiguous share of the FFCV file. ``keys`` are the
    samples' ``sample_id`` as text (the FFCV schema stores no key string)."""

    def __init__(self, cfg: DataConfig, directory: str, rank: int, world_size: int) -> None:
        shards: ShardSet = open_shards(directory, FORMAT_FFCV)
        self.format = FORMAT_FFCV
        self.num_classes = len(shards.manifest.classes)
        self.total_samples = shards.total
        start, stop = balanced_range(shards.total, world_size, rank)
        self.num_samples = stop - start
        self._size = cfg.eval_size
        self._path = str(shards.paths[0])
        indices = np.arange(start, stop, dtype=np.uint64)
        self._loader = (
            None
            if not len(indices)
            else _keeping_torch_threads(
                lambda: Loader(
                    str(shards.paths[0]),
                    batch_size=cfg.eval_batch_size,
                    num_workers=max(cfg.workers, 1),
                    os_cache=cfg.ffcv_os_cache,
                    order=_RankOrder(lambda _: indices),
                    drop_last=False,
                    batches_ahead=BATCHES_AHEAD,
                    pipelines={
                        FFCV_IMAGE: [
                            _ResizedFrameDecoder(cfg.eval_size, cfg.eval_size, flip=False),
                            ToTensor(),
                        ],
                        FFCV_LABEL: _int_pipeline(),
                        FFCV_SAMPLE_ID: _int_pipeline(),
                        FFCV_NUM_BOXES: _int_pipeline(),
                        FFCV_WIDTH: _int_pipeline(),
                        FFCV_HEIGHT: _int_pipeline(),
                        FFCV_BOXES: [NDArrayDecoder(), ToTensor()],
                    },
                )
            )
        )

    def __iter__(self) -> Iterator[EvalBatch]:
        if self._loader is None:
            return
        names = list(self._loader.reader.handlers)
        for fields in _iterate(self._loader):
            f = dict(zip(names, fields))
            images, bad = _split_status(f[FFCV_IMAGE])
            if bad.any():
                raise _corrupt_error(self._path, f[FFCV_SAMPLE_ID][bad], EVAL_HINT)
            boxes = [
                torch.from_numpy(rescale_boxes(boxes_from_ffcv(b.numpy(), n), w, h, self._size))
                for b, n, w, h in zip(
                    f[FFCV_BOXES], f[FFCV_NUM_BOXES].tolist(), f[FFCV_WIDTH].tolist(), f[FFCV_HEIGHT].tolist()
                )
            ]
            ids = f[FFCV_SAMPLE_ID].clone()
            yield EvalBatch(
                images=pinned_copy(images),
                labels=f[FFCV_LABEL].clone(),
                boxes=boxes,
                keys=[str(i) for i in ids.tolist()],
                sample_ids=ids,
            )
