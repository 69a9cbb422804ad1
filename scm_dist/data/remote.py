"""Shards streamed from a URL (``http(s)://``, ``s3://``), each checked as it streams, through
an optional local cache.

Every shard is read through :class:`data_shards.remote_stream.VerifiedStream`: bytes and
sha256 are compared with the manifest when the last byte arrives, so a short, corrupt or
replaced shard is a ShardError naming its URL, never a short epoch. A reader that needs only
the first samples of a shard (a rank's or worker's range ends inside it) still reads the
rest so that the shard is checked (at most one extra partial shard per segment end).

The cache (``data.cache_dir``) keeps verified shards under their manifest sha256
(``<sha256>.<ext>``): a shard whose content changed has another digest in its new
manifest, so the cache cannot serve a stale one. A copy is written next to its final name
while it streams and renamed into place only after it verified (ranks and workers on one
node may fill the cache at the same time); a cached copy is checked again as it is read,
and deleted if it no longer matches.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, BinaryIO

from data_shards.remote import FileStore, RemoteError, Store, open_store, safe_name
from data_shards.remote_stream import DigestError, VerifiedStream, read_remote_manifest
from data_shards.schema import Manifest, ShardEntry
from scm_dist.config import DataConfig

READ_BUFFER = 1 << 20
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ShardCache:
    """Verified shard copies in a local directory, named by their manifest digest."""

    directory: Path

    def name(self, entry: ShardEntry) -> str:
        if not SHA256_HEX.fullmatch(entry.sha256):
            raise RemoteError(f"{entry.name}: the manifest's sha256 {entry.sha256!r} is not a sha256 digest")
        return f"{entry.sha256}{Path(entry.name).suffix}"

    def find(self, entry: ShardEntry) -> ShardEntry | None:
        """The cached copy's entry (same digest, the cache's file name), if there is one."""
        cached = replace(entry, name=self.name(entry))
        path = self.directory / cached.name
        return cached if path.is_file() and path.stat().st_size == entry.bytes else None

    def temporary(self, entry: ShardEntry) -> IO[bytes]:
        self.directory.mkdir(parents=True, exist_ok=True)
        return tempfile.NamedTemporaryFile(
            dir=self.directory, prefix=f".{self.name(entry)}.", suffix=".part", delete=False
        )

    def path(self, entry: ShardEntry) -> Path:
        return self.directory / self.name(entry)


@dataclass(frozen=True)
class RemoteShards:
    """Opens shards of a split URL as verified streams (a ShardSet source)."""

    store: Store
    retries: int
    backoff_s: float
    cache: ShardCache | None

    def url(self, entry: ShardEntry) -> str:
        return self.store.url_of(entry.name)

    @contextmanager
    def open(self, entry: ShardEntry) -> Iterator[BinaryIO]:
        """``entry``'s bytes; a normal exit reads the rest and checks the digest."""
        cached = self.cache.find(entry) if self.cache else None
        if cached is not None and self.cache is not None:
            with self._checked_copy(cached) as stream:
                yield stream
            return
        sink = self.cache.temporary(entry) if self.cache else None
        raw = VerifiedStream(self.store, entry, self.retries, self.backoff_s, sink=sink)
        try:
            with io.BufferedReader(raw, READ_BUFFER) as stream:
                yield stream
                raw.finish()
        finally:
            if sink is not None and self.cache is not None:
                sink.close()
                if raw.verified:
                    os.replace(sink.name, self.cache.path(entry))
                else:
                    Path(sink.name).unlink(missing_ok=True)

    @contextmanager
    def _checked_copy(self, cached: ShardEntry) -> Iterator[BinaryIO]:
        assert self.cache is not None
        raw = VerifiedStream(FileStore(self.cache.directory), cached, 0, 0.0)
        try:
            with io.BufferedReader(raw, READ_BUFFER) as stream:
                yield stream
                raw.finish()
        except DigestError as err:
            (self.cache.directory / cached.name).unlink(missing_ok=True)
            raise RemoteError(f"{err.message} (a cached copy: deleted; run again to fetch it anew)") from None


def remote_shards(url: str, cfg: DataConfig) -> tuple[Manifest, RemoteShards]:
    """The manifest at ``url`` and a source that streams its shards with ``cfg``'s retries,
    backoff and cache."""
    if cfg.remote_retries < 0 or cfg.remote_backoff_s < 0:
        raise ValueError("data.remote_retries and data.remote_backoff_s must be >= 0")
    store = open_store(url)
    manifest = read_remote_manifest(store, cfg.remote_retries, cfg.remote_backoff_s)
    for entry in manifest.shards:  # names reach URLs and the cache: refuse paths up front
        safe_name(entry.name, url)
    cache = ShardCache(Path(cfg.cache_dir).expanduser()) if cfg.cache_dir else None
    return manifest, RemoteShards(store, cfg.remote_retries, cfg.remote_backoff_s, cache)
