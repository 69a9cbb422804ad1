"""The shard schema: the one definition of what a sample and a manifest look like.

Everything that reads or writes shards imports the names below; nothing else in the
project knows the byte layout.

Directory layout (one directory per split)::

    OUT/<split>/manifest.json        counts, checksums, classes, skipped samples
    OUT/<split>/_info.json           timm WebDataset reader info (num_samples, filenames, shard_lengths)
    OUT/<split>/<split>-000000.tar   WebDataset shards
    OUT/<split>/<split>.beton        FFCV file (one per split)

WebDataset sample (``key`` is the source file stem, e.g. ``ILSVRC2012_val_00000001``)::

    key.jpg   JPEG bytes (the source bytes, unchanged unless the image had to change)
    key.cls   class index as ASCII decimal (what webdataset's default decoder and timm read)
    key.json  UTF-8 JSON with the fields of :class:`SampleInfo`

Boxes are ``[x0, y0, x1, y1]`` in ORIGINAL pixels: the frame of ``width`` x ``height``,
the size the annotation refers to. Coordinates are pixel indices, corners included (the
"+1" area convention of the WSOL protocol), clipped to ``[0, width-1] x [0, height-1]``.
When the stored JPEG is smaller (``--max-side``, or a stand-in image), ``image_width`` x
``image_height`` is the stored size and :func:`boxes_in_image_pixels` rescales the boxes to it.
Every box of an image is kept.

FFCV sample: the fields of :data:`FFCV_FIELDS`, in that order; the image is the same
JPEG bytes as the WebDataset ``key.jpg`` (FFCV's ``jpg`` image mode). ``boxes`` is a float32
array of shape ``[max_boxes, 4]`` (``max_boxes`` is :data:`MAX_BOXES` unless the
conversion was given ``--max-boxes``; the manifest records it), the first ``num_boxes``
rows are the boxes, the rest are zero. Overflow policy: an image with more boxes than
``max_boxes`` is never truncated; the conversion stops with an error naming the image and
asking for a larger ``--max-boxes``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1

# WebDataset extensions (the part after the first dot of a tar member name).
WDS_IMAGE_KEY = "jpg"
WDS_LABEL_KEY = "cls"
WDS_INFO_KEY = "json"

# FFCV field names, in the order they are written to the .beton.
FFCV_IMAGE = "image"  # ffcv RGBImageField (JPEG inside the .beton)
FFCV_LABEL = "label"  # ffcv IntField, class index
FFCV_BOXES = "boxes"  # ffcv NDArrayField float32 [max_boxes, 4], original pixels
FFCV_NUM_BOXES = "num_boxes"  # ffcv IntField, number of valid rows of boxes
FFCV_WIDTH = "width"  # ffcv IntField, original width (frame of the boxes)
FFCV_HEIGHT = "height"  # ffcv IntField, original height
FFCV_SAMPLE_ID = "sample_id"  # ffcv IntField, same sample_id as the WebDataset json
FFCV_FIELDS: tuple[str, ...] = (
    FFCV_IMAGE,
    FFCV_LABEL,
    FFCV_BOXES,
    FFCV_NUM_BOXES,
    FFCV_WIDTH,
    FFCV_HEIGHT,
    FFCV_SAMPLE_ID,
)
BOX_DTYPE = np.float32
MAX_BOXES = 32  # ImageNet-1K val has at most 20 boxes per image, CUB one.

MANIFEST_NAME = "manifest.json"
TIMM_INFO_NAME = "_info.json"
FORMAT_WEBDATASET = "webdataset"
FORMAT_FFCV = "ffcv"
FORMATS = (FORMAT_WEBDATASET, FORMAT_FFCV)


def wds_shard_name(split: str, index: int) -> str:
    """File name of WebDataset shard number ``index`` of ``split``."""
    return f"{split}-{index:06d}.tar"


def ffcv_file_name(split: str) -> str:
    """File name of the FFCV file of ``split``."""
    return f"{split}.beton"


@dataclass(frozen=True)
class SampleInfo:
    """The ``key.json`` of a WebDataset sample."""

    key: str
    sample_id: int  # position in the split's sorted source order, stable across formats
    label: int
    class_name: str
    width: int  # original width: the frame of ``boxes``
    height: int  # original height
    boxes: tuple[tuple[float, float, float, float], ...]
    image_width: int  # size of the stored JPEG
    image_height: int
    source: str  # source path relative to the dataset root

    def to_json(self) -> bytes:
        """Canonical UTF-8 JSON (sorted keys, no spaces) so shards are byte-identical; only
        the fields of this class (a subclass's extra fields are not part of the json)."""
        data = {f.name: getattr(self, f.name) for f in fields(SampleInfo)}
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_sample_json(raw: bytes | str | Mapping[str, Any]) -> SampleInfo:
    """Parse a ``key.json`` (bytes, text, or the dict webdataset's decoder already made)."""
    data = json.loads(raw) if isinstance(raw, (bytes, str)) else dict(raw)
    return SampleInfo(
        key=str(data["key"]),
        sample_id=int(data["sample_id"]),
        label=int(data["label"]),
        class_name=str(data["class_name"]),
        width=int(data["width"]),
        height=int(data["height"]),
        boxes=tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in data["boxes"]),
        image_width=int(data["image_width"]),
        image_height=int(data["image_height"]),
        source=str(data["source"]),
    )


def boxes_array(info: SampleInfo) -> np.ndarray:
    """Boxes of a sample as a float32 array ``[n, 4]`` in original pixels."""
    return np.asarray(info.boxes, dtype=BOX_DTYPE).reshape(-1, 4)


def boxes_in_image_pixels(info: SampleInfo) -> np.ndarray:
    """Boxes rescaled from the original frame to the stored image's pixels."""
    scale = np.array([info.image_width / info.width, info.image_height / info.height] * 2, dtype=np.float64)
    return (boxes_array(info).astype(np.float64) * scale).astype(BOX_DTYPE)


def pad_boxes(boxes: np.ndarray, max_boxes: int, where: str = "") -> tuple[np.ndarray, int]:
    """FFCV encoding: ``[max_boxes, 4]`` float32 zero-padded array and the box count.

    Raises ``ValueError`` above ``max_boxes`` (never truncates; see the overflow policy).
    """
    boxes = np.asarray(boxes, dtype=BOX_DTYPE).reshape(-1, 4)
    if len(boxes) > max_boxes:
        raise ValueError(
            f"{where or 'sample'} has {len(boxes)} boxes, more than max_boxes="
            f"{max_boxes}; rerun the conversion with --max-boxes {len(boxes)} or more"
        )
    out = np.zeros((max_boxes, 4), dtype=BOX_DTYPE)
    out[: len(boxes)] = boxes
    return out, len(boxes)


def boxes_from_ffcv(boxes: np.ndarray, count: int | np.ndarray) -> np.ndarray:
    """Inverse of :func:`pad_boxes`: the ``[count, 4]`` valid rows of an FFCV boxes array."""
    return np.asarray(boxes, dtype=BOX_DTYPE).reshape(-1, 4)[: int(np.asarray(count).reshape(-1)[0])]


@dataclass(frozen=True)
class ShardEntry:
    """One output file: a WebDataset tar or the FFCV .beton."""

    name: str  # file name inside the split directory
    format: str  # "webdataset" or "ffcv"
    samples: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class SkippedSample:
    """A source image that is not in the shards, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` of one split directory."""

    schema_version: int
    source: str  # "imagenet", "cub", "folder", "synthetic"
    split: str
    formats: tuple[str, ...]
    classes: tuple[str, ...]  # class index -> name (wnid for ImageNet)
    max_boxes: int  # rows of the FFCV boxes array
    shards: tuple[ShardEntry, ...]
    total_samples: int  # samples in each format
    total_boxes: int
    images_in: int  # source images considered: images_in == total_samples + len(skipped)
    boxes_clipped: int  # boxes that lay partly outside their image and were clipped
    skipped: tuple[SkippedSample, ...]
    arguments: Mapping[str, Any] = field(default_factory=dict)
    boxes_skipped: int = 0  # bad boxes (non-finite, outside the image) left out with --skip-bad-boxes

    def shards_of(self, fmt: str) -> tuple[ShardEntry, ...]:
        """The files of one format, in order."""
        return tuple(s for s in self.shards if s.format == fmt)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the on-disk field names)."""
        return {
            "schema_version": self.schema_version,
            "source": self.source,
            "split": self.split,
            "formats": list(self.formats),
            "classes": list(self.classes),
            "max_boxes": self.max_boxes,
            "shards": [asdict(s) for s in self.shards],
            "totals": {
                "samples": self.total_samples,
                "boxes": self.total_boxes,
                "images_in": self.images_in,
                "skipped": len(self.skipped),
                "boxes_clipped": self.boxes_clipped,
                "boxes_skipped": self.boxes_skipped,
                "bytes": {f: sum(s.bytes for s in self.shards_of(f)) for f in self.formats},
            },
            "skipped": [asdict(s) for s in self.skipped],
            "arguments": dict(self.arguments),
        }


def manifest_from_dict(data: Mapping[str, Any]) -> Manifest:
    """Build a :class:`Manifest` from its JSON dict; raises ``ValueError`` on another schema version."""
    version = int(data.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        raise ValueError(
            f"manifest schema_version {version}, this code reads {SCHEMA_VERSION}; "
            "reconvert the dataset with this version of scm-shards"
        )
    totals = data["totals"]
    return Manifest(
        schema_version=version,
        source=data["source"],
        split=data["split"],
        formats=tuple(data["formats"]),
        classes=tuple(data["classes"]),
        max_boxes=int(data["max_boxes"]),
        shards=tuple(ShardEntry(**s) for s in data["shards"]),
        total_samples=int(totals["samples"]),
        total_boxes=int(totals["boxes"]),
        images_in=int(totals["images_in"]),
        boxes_clipped=int(totals["boxes_clipped"]),
        skipped=tuple(SkippedSample(**s) for s in data["skipped"]),
        arguments=dict(data.get("arguments", {})),
        boxes_skipped=int(totals.get("boxes_skipped", 0)),
    )


def read_manifest(split_dir: str | Path) -> Manifest:
    """Read ``split_dir/manifest.json``; clear errors when it is missing or malformed."""
    path = Path(split_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST_NAME} in {split_dir}: expected a split directory "
            "written by `scm-shards convert` or `scm-shards synth` (OUT/<split>)"
        )
    try:
        return manifest_from_dict(json.loads(path.read_text()))
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a valid manifest ({err!r}); reconvert the dataset") from err


def shard_paths(split_dir: str | Path, fmt: str) -> list[Path]:
    """Absolute paths of the files of format ``fmt`` listed in the split's manifest."""
    manifest = read_manifest(split_dir)
    if fmt not in manifest.formats:
        raise ValueError(
            f"{split_dir} holds {list(manifest.formats)}, not {fmt}; convert with --format {fmt} or both"
        )
    return [Path(split_dir) / s.name for s in manifest.shards_of(fmt)]
