"""A split directory's shards, checked against its manifest before anything is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data_shards.schema import FORMAT_FFCV, FORMAT_WEBDATASET, MANIFEST_NAME, Manifest, read_manifest

FORMAT_FOLDER = "folder"
FORMAT_AUTO = "auto"


class ShardError(RuntimeError):
    """A shard is missing, truncated or disagrees with the manifest (the message names it)."""


@dataclass(frozen=True)
class ShardSet:
    """The files of one format of a split, in manifest order, with their sample counts."""

    directory: Path
    manifest: Manifest
    format: str
    paths: tuple[Path, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


def resolve_format(directory: str | Path, requested: str) -> str:
    """The format to read: ``requested``, or for ``auto`` FFCV when the manifest lists it,
    else WebDataset; a directory without a manifest is an image folder."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"data directory {directory} does not exist; set data.train_dir "
            "/ data.val_dir to a split directory written by data_shards"
        )
    allowed = (FORMAT_AUTO, FORMAT_WEBDATASET, FORMAT_FFCV, FORMAT_FOLDER)
    if requested not in allowed:
        raise ValueError(f"data.format {requested!r} is not one of {', '.join(allowed)}")
    if requested == FORMAT_FOLDER or (requested == FORMAT_AUTO and not (directory / MANIFEST_NAME).is_file()):
        return FORMAT_FOLDER
    manifest = read_manifest(directory)
    if requested == FORMAT_AUTO:
        return FORMAT_FFCV if FORMAT_FFCV in manifest.formats else FORMAT_WEBDATASET
    if requested not in manifest.formats:
        raise ValueError(
            f"{directory} holds {list(manifest.formats)}, not {requested}; "
            f"set data.format to one of those or convert with --format {requested}"
        )
    return requested


def open_shards(directory: str | Path, fmt: str) -> ShardSet:
    """Every file of ``fmt`` listed in the manifest, each present with the listed size."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    entries = manifest.shards_of(fmt)
    if not entries:
        raise ShardError(f"{directory}/{MANIFEST_NAME} lists no {fmt} files")
    for entry in entries:
        path = directory / entry.name
        if not path.is_file():
            raise ShardError(
                f"shard {path} is listed in the manifest but missing; copy it again or reconvert the split"
            )
        size = path.stat().st_size
        if size != entry.bytes:
            raise ShardError(
                f"shard {path} has {size} bytes, the manifest says {entry.bytes} "
                "(truncated or replaced); copy it again or reconvert the split"
            )
    if sum(e.samples for e in entries) != manifest.total_samples:
        raise ShardError(
            f"{directory}/{MANIFEST_NAME}: the {fmt} shards hold "
            f"{sum(e.samples for e in entries)} samples, the total says "
            f"{manifest.total_samples}; reconvert the split"
        )
    return ShardSet(
        directory,
        manifest,
        fmt,
        tuple(directory / e.name for e in entries),
        tuple(e.samples for e in entries),
    )
