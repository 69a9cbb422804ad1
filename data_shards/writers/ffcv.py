"""The FFCV .beton of a split, built from the split's WebDataset shards.

Fields and their order are :data:`data_shards.schema.FFCV_FIELDS`. Images are stored as the
JPEG bytes of the WebDataset shards, unchanged: those are always 3-channel JPEGs (the
conversion re-encodes anything else), which FFCV's ``jpg`` image mode holds as they are.
FFCV's writer runs in one process, so the file is byte-identical between runs.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
from ffcv.fields import IntField, NDArrayField, RGBImageField
from ffcv.fields.rgb_image import IMAGE_MODES
from ffcv.writer import MIN_PAGE_SIZE, DatasetWriter

from data_shards.processes import ChildFailed, run_guarded
from data_shards.schema import (
    BOX_DTYPE,
    FFCV_FIELDS,
    FORMAT_FFCV,
    WDS_IMAGE_KEY,
    WDS_INFO_KEY,
    ShardEntry,
    boxes_array,
    decode_sample_json,
    ffcv_file_name,
    pad_boxes,
)
from data_shards.writers.atomic import commit, sha256_file, tmp_path


@dataclass(frozen=True)
class EncodedJpeg:
    """An RGB JPEG to store as it is, with its size."""

    data: bytes
    width: int
    height: int


def _store_jpeg(destination: np.ndarray, image: EncodedJpeg, malloc) -> None:
    """``RGBImageField.encode`` for bytes that already are an RGB JPEG: what FFCV's jpg mode writes."""
    destination["mode"] = IMAGE_MODES["jpg"]
    destination["width"], destination["height"] = image.width, image.height
    destination["data_ptr"], storage = malloc(len(image.data))
    storage[:] = np.frombuffer(image.data, np.uint8)


def jpeg_field() -> RGBImageField:
    """An RGBImageField that stores given JPEG bytes instead of re-encoding decoded pixels.

    Only the instance's ``encode`` changes; the file records a plain RGBImageField, read by
    FFCV's own decoders.
    """
    field = RGBImageField(write_mode="jpg")
    field.encode = _store_jpeg
    return field


def ffcv_fields(max_boxes: int) -> dict:
    """The FFCV field objects, in schema order."""
    fields = {
        "image": jpeg_field(),
        "label": IntField(),
        "boxes": NDArrayField(dtype=np.dtype(BOX_DTYPE), shape=(max_boxes, 4)),
        "num_boxes": IntField(),
        "width": IntField(),
        "height": IntField(),
        "sample_id": IntField(),
    }
    assert tuple(fields) == FFCV_FIELDS
    return fields


@dataclass(frozen=True)
class _Location:
    tar: str
    image: tuple[int, int]  # (offset, size) of the JPEG member's data
    info: tuple[int, int]  # (offset, size) of the json member's data


def index_tar_samples(tars: list[Path]) -> list[_Location]:
    """Byte locations of every sample's JPEG and json in the shards, in shard order."""
    out = []
    for tar_path in tars:
        found: dict[str, dict[str, tuple[int, int]]] = {}
        with tarfile.open(tar_path, "r") as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                found.setdefault(key, {})[ext] = (member.offset_data, member.size)
        out += [
            _Location(str(tar_path), parts[WDS_IMAGE_KEY], parts[WDS_INFO_KEY]) for parts in found.values()
        ]
    return out


class _ShardSamples:
    """Indexable view of the shards for FFCV's writer: the field values of each sample."""

    def __init__(self, locations: list[_Location], max_boxes: int) -> None:
        self.locations, self.max_boxes = locations, max_boxes

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, index: int) -> tuple:
        loc = self.locations[index]
        with open(loc.tar, "rb") as f:
            f.seek(loc.info[0])
            info = decode_sample_json(f.read(loc.info[1]))
            f.seek(loc.image[0])
            jpeg = EncodedJpeg(f.read(loc.image[1]), info.image_width, info.image_height)
        boxes, count = pad_boxes(boxes_array(info), self.max_boxes, where=info.source)
        return jpeg, info.label, boxes, count, info.width, info.height, info.sample_id


def _page_size(largest_sample: int) -> int:
    """FFCV page: a power of two (>= 2 MiB) holding the largest sample."""
    return max(MIN_PAGE_SIZE, 1 << int(largest_sample + 4096).bit_length())


def _remove_leftovers(writer: DatasetWriter, tmp: Path) -> None:
    """What an unfinished FFCV writer leaves: its shared-memory block and the temporary file."""
    block = getattr(writer, "metadata_sm", None)  # set by DatasetWriter.prepare()
    if isinstance(block, shared_memory.SharedMemory):
        try:
            block.unlink()
        except FileNotFoundError:
            pass
    tmp.unlink(missing_ok=True)


def write_beton(folder: Path, split: str, tars: list[Path], max_boxes: int) -> ShardEntry:
    """Write ``<split>.beton`` from the split's tar shards, atomically; returns its entry.

    FFCV's writer runs in a guarded child process (:func:`data_shards.processes.run_guarded`):
    an interrupt or a SIGKILL of this process leaves no writer process, temporary file or
    shared memory behind."""
    path = folder / ffcv_file_name(split)
    locations = index_tar_samples(tars)
    writer = DatasetWriter(
        str(tmp_path(path)),
        ffcv_fields(max_boxes),
        page_size=_page_size(max(loc.image[1] for loc in locations)),
        num_workers=1,
    )
    try:
        run_guarded(
            lambda: writer.from_indexed_dataset(_ShardSamples(locations, max_boxes), chunksize=256),
            lambda: _remove_leftovers(writer, tmp_path(path)),
        )
    except ChildFailed as err:
        raise RuntimeError(f"the FFCV writer failed on {path}: {err}") from err
    commit(path)
    return ShardEntry(
        name=path.name,
        format=FORMAT_FFCV,
        samples=len(locations),
        bytes=path.stat().st_size,
        sha256=sha256_file(path),
    )
