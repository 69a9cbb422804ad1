"""A split's shards, checked against its manifest before anything is read: a local directory
or a URL (``http(s)://``, ``s3://``; see :mod:`scm_dist.data.remote`)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from data_shards.remote import is_url
from data_shards.schema import (
    FORMAT_FFCV,
    FORMAT_WEBDATASET,
    MANIFEST_NAME,
    Manifest,
    ShardEntry,
    read_manifest,
)
from scm_dist.config import DataConfig

FORMAT_FOLDER = "folder"
FORMAT_AUTO = "auto"


class ShardError(RuntimeError):
    """A shard is missing, truncated or disagrees with the manifest (the message names it)."""


class ShardSource(Protocol):
    """Opens the shards of a split as byte streams."""

    def url(self, entry: ShardEntry) -> str: ...
    def open(self, entry: ShardEntry) -> AbstractContextManager[BinaryIO]: ...


@dataclass(frozen=True)
class LocalShards:
    """Shards in a local directory (their sizes were checked when the set was opened)."""

    directory: Path

    def url(self, entry: ShardEntry) -> str:
        return str(self.directory / entry.name)

    def open(self, entry: ShardEntry) -> AbstractContextManager[BinaryIO]:
        return open(self.directory / entry.name, "rb")


@dataclass(frozen=True)
class ShardSet:
    """The files of one format of a split, in manifest order, and where they are read from."""

    location: str
    manifest: Manifest
    format: str
    entries: tuple[ShardEntry, ...]
    source: ShardSource

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(e.samples for e in self.entries)

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def paths(self) -> tuple[Path, ...]:
        """Local file paths (local splits only)."""
        if not isinstance(self.source, LocalShards):
            raise ValueError(f"{self.location} is not a local directory")
        return tuple(self.source.directory / e.name for e in self.entries)

    def url(self, index: int) -> str:
        return self.source.url(self.entries[index])

    def open(self, index: int) -> AbstractContextManager[BinaryIO]:
        """Shard ``index`` as a byte stream; leaving the block normally checks what the
        source can check (a remote shard: the rest of it is read and its digest compared)."""
        return self.source.open(self.entries[index])


def resolve_format(location: str | Path, requested: str) -> str:
    """The format to read: ``requested``, or for ``auto`` FFCV when the manifest lists it,
    else WebDataset; a directory without a manifest is an image folder. A URL is read as
    WebDataset (FFCV needs random access to a local file)."""
    allowed = (FORMAT_AUTO, FORMAT_WEBDATASET, FORMAT_FFCV, FORMAT_FOLDER)
    if requested not in allowed:
        raise ValueError(f"data.format {requested!r} is not one of {', '.join(allowed)}")
    if is_url(str(location)):
        return _resolve_url_format(str(location), requested)
    directory = Path(location)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"data directory {directory} does not exist; set data.train_dir "
            "/ data.val_dir to a split directory written by data_shards"
        )
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


def _resolve_url_format(url: str, requested: str) -> str:
    if requested == FORMAT_FFCV:
        raise ValueError(
            f"data.format=ffcv needs the .beton on a local disk (random access), not at {url}: "
            f"copy the split with `scm-shards fetch {url} DIR` and point data.train_dir / "
            "data.val_dir at DIR, or set data.format=webdataset to stream the tar shards"
        )
    if requested == FORMAT_FOLDER:
        raise ValueError(f"an image folder cannot be streamed from {url}; convert it with scm-shards first")
    return FORMAT_WEBDATASET


def open_shards(location: str | Path, fmt: str, cfg: DataConfig | None = None) -> ShardSet:
    """Every file of ``fmt`` listed in the manifest, their counts adding up to its total;
    local files each present with the listed size (a URL's shards are checked as they
    stream, with ``cfg``'s retries and cache)."""
    source: ShardSource
    if is_url(str(location)):
        from .remote import remote_shards

        manifest, source = remote_shards(str(location), cfg or DataConfig())
    else:
        manifest, source = read_manifest(location), LocalShards(Path(location))
    entries = manifest.shards_of(fmt)
    if not entries:
        raise ShardError(f"{location}/{MANIFEST_NAME} lists no {fmt} files")
    if isinstance(source, LocalShards):
        _check_local_files(source, entries)
    if sum(e.samples for e in entries) != manifest.total_samples:
        raise ShardError(
            f"{location}/{MANIFEST_NAME}: the {fmt} shards hold "
            f"{sum(e.samples for e in entries)} samples, the total says "
            f"{manifest.total_samples}; reconvert the split"
        )
    return ShardSet(str(location), manifest, fmt, entries, source)


def _check_local_files(source: LocalShards, entries: tuple[ShardEntry, ...]) -> None:
    for entry in entries:
        path = source.directory / entry.name
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
