"""The FFCV .beton of a split, built from the split's WebDataset shards.

Fields and their order are :data:`data_shards.schema.FFCV_FIELDS`. FFCV stores images as
JPEG that it encodes itself (``jpeg_quality``) from decoded pixels; the pixels are those of
the WebDataset JPEG, already at ``--max-side``. FFCV's own writer runs one process so that
the file is byte-identical between runs; decoding is spread over ``workers`` processes.
"""
from __future__ import annotations

import multiprocessing
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np
from ffcv.fields import IntField, NDArrayField, RGBImageField
from ffcv.writer import MIN_PAGE_SIZE, DatasetWriter

from data_shards.schema import (
    BOX_DTYPE, FFCV_FIELDS, FORMAT_FFCV, ShardEntry, WDS_IMAGE_KEY, WDS_INFO_KEY, boxes_array,
    decode_sample_json, ffcv_file_name, pad_boxes,
)
from data_shards.writers.atomic import commit, sha256_file, tmp_path

FfcvSample = tuple[np.ndarray, int, np.ndarray, int, int, int, int]


@dataclass(frozen=True)
class _Location:
    tar: str
    image: tuple[int, int]   # (offset, size) of the JPEG member's data
    info: tuple[int, int]    # (offset, size) of the json member's data


def index_tar_samples(tars: list[Path]) -> list[_Location]:
    """Byte locations of every sample's JPEG and json in the shards, in shard order."""
    out = []
    for tar_path in tars:
        found: dict[str, dict[str, tuple[int, int]]] = {}
        order = []
        with tarfile.open(tar_path, "r") as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                if key not in found:
                    found[key] = {}
                    order.append(key)
                found[key][ext] = (member.offset_data, member.size)
        out += [_Location(str(tar_path), found[k][WDS_IMAGE_KEY], found[k][WDS_INFO_KEY]) for k in order]
    return out


def _read(path: str, where: tuple[int, int]) -> bytes:
    with open(path, "rb") as f:
        f.seek(where[0])
        return f.read(where[1])


def load_ffcv_sample(job: tuple[_Location, int]) -> FfcvSample:
    """Decode one sample of the shards into the FFCV field values."""
    loc, max_boxes = job
    info = decode_sample_json(_read(loc.tar, loc.info))
    bgr = cv2.imdecode(np.frombuffer(_read(loc.tar, loc.image), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{loc.tar}: the JPEG of sample {info.key} does not decode; "
                         "run `scm-shards verify --deep` on the folder")
    boxes, count = pad_boxes(boxes_array(info), max_boxes, where=info.source)
    return (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), info.label, boxes, count, info.width, info.height,
            info.sample_id)


class _OrderedShardDataset:
    """Indexable view of the shards for FFCV's writer, read strictly in order.

    With ``workers > 1`` a process pool decodes ahead (ordered ``imap``), started lazily in
    the FFCV writer process.
    """

    def __init__(self, locations: list[_Location], max_boxes: int, workers: int) -> None:
        self.locations, self.max_boxes, self.workers = locations, max_boxes, workers
        self._iter: Optional[Iterator[FfcvSample]] = None
        self._pool = None
        self._next = 0

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, index: int) -> FfcvSample:
        if self.workers <= 1:
            return load_ffcv_sample((self.locations[index], self.max_boxes))
        if self._iter is None:
            self._pool = multiprocessing.get_context("fork").Pool(self.workers)
            jobs = ((loc, self.max_boxes) for loc in self.locations)
            self._iter = self._pool.imap(load_ffcv_sample, jobs, chunksize=32)
        if index != self._next:
            raise RuntimeError(f"FFCV asked for sample {index}, expected {self._next} (sequential order)")
        self._next += 1
        sample = next(self._iter)
        if self._next == len(self.locations):
            self._pool.close()
        return sample


def ffcv_fields(max_boxes: int, jpeg_quality: int) -> dict:
    """The FFCV field objects, in schema order."""
    fields = {
        "image": RGBImageField(write_mode="jpg", jpeg_quality=jpeg_quality),
        "label": IntField(),
        "boxes": NDArrayField(dtype=np.dtype(BOX_DTYPE), shape=(max_boxes, 4)),
        "num_boxes": IntField(), "width": IntField(), "height": IntField(), "sample_id": IntField(),
    }
    assert tuple(fields) == FFCV_FIELDS
    return fields


def _page_size(largest_jpeg: int) -> int:
    """FFCV page: a power of two holding the largest sample with room for re-encoding (>= 2 MiB)."""
    return max(MIN_PAGE_SIZE, 1 << int(4 * largest_jpeg + 4096).bit_length())


def write_beton(folder: Path, split: str, tars: list[Path], max_boxes: int, jpeg_quality: int,
                workers: int) -> ShardEntry:
    """Write ``<split>.beton`` from the split's tar shards, atomically; returns its entry."""
    path = folder / ffcv_file_name(split)
    locations = index_tar_samples(tars)
    dataset = _OrderedShardDataset(locations, max_boxes, workers)
    writer = DatasetWriter(str(tmp_path(path)), ffcv_fields(max_boxes, jpeg_quality),
                           page_size=_page_size(max(loc.image[1] for loc in locations)), num_workers=1)
    writer.from_indexed_dataset(dataset, chunksize=256)
    commit(path)
    return ShardEntry(name=path.name, format=FORMAT_FFCV, samples=len(locations),
                      bytes=path.stat().st_size, sha256=sha256_file(path))
