"""What a source hands to the conversion: one record per source image, and what preparing it
gives (an unreadable image gives a :class:`data_shards.schema.SkippedSample`)."""

from __future__ import annotations

from dataclasses import dataclass

from data_shards.schema import SampleInfo

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class SourceRecord:
    """One source image with its label and boxes, before it is read.

    Exactly one of ``path`` (a file to read) and ``data`` (bytes already in memory) is set.
    ``size`` is the (width, height) the boxes refer to when the annotation states it;
    ``None`` means the frame is the image file's own size.
    """

    key: str
    source: str  # path relative to the dataset root, for messages and the json
    label: int
    class_name: str
    boxes: tuple[Box, ...] = ()
    size: tuple[int, int] | None = None
    path: str | None = None
    data: bytes | None = None
    box_origins: tuple[str, ...] = ()  # where each box is annotated ("file:line"), for messages


@dataclass(frozen=True)
class SourceListing:
    """Everything a source found for one split, in canonical (sorted) order."""

    name: str  # "imagenet", "cub", "folder", "synthetic"
    split: str
    classes: tuple[str, ...]
    records: tuple[SourceRecord, ...]


@dataclass(frozen=True)
class PreparedSample(SampleInfo):
    """A record after reading: its ``key.json`` fields (:class:`SampleInfo`), the bytes to
    store and what the checks found."""

    jpeg: bytes
    boxes_clipped: int
    reencoded: bool
    bad_boxes: tuple[str, ...] = ()  # boxes left out (non-finite, no overlap with the image), why
