"""One remote object read as a stream and checked against its manifest entry while it streams.

:class:`VerifiedStream` counts the bytes and computes the sha256 on the fly; when the last
byte the manifest lists has arrived it compares both and raises :class:`DigestError` (a
:class:`RemoteError`) naming the URL if the object differs. A dropped connection, a short
read or a 5xx is retried from the byte where it stopped (a ``Range`` request), with
exponential backoff, at most ``retries`` times in a row without progress; then a
RemoteError says where it stopped. A copy of the bytes can be written to ``sink`` as they
pass (a cache file or a download), valid only once the stream has verified.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import IO

from data_shards.remote import Body, RemoteError, Store, TransientError
from data_shards.schema import MANIFEST_NAME, Manifest, ShardEntry, manifest_from_dict

BACKOFF_CAP_S = 30.0


class DigestError(RemoteError):
    """The streamed object is not the one the manifest lists."""


class VerifiedStream(io.RawIOBase):
    """Readable raw stream of ``entry`` from ``store`` (wrap in ``io.BufferedReader``)."""

    def __init__(
        self,
        store: Store,
        entry: ShardEntry,
        retries: int,
        backoff_s: float,
        sink: IO[bytes] | None = None,
        resume_from: Path | None = None,
    ) -> None:
        super().__init__()
        self.store, self.entry, self.url = store, entry, store.url_of(entry.name)
        self.retries, self.backoff_s, self.sink = retries, backoff_s, sink
        self.digest = hashlib.sha256()
        self.position = 0
        self.verified = False
        self._body: Body | None = None
        if resume_from is not None:  # a partial download: its bytes count, the rest streams
            with open(resume_from, "rb") as f:
                while block := f.read(1 << 22):
                    self.digest.update(block)
                    self.position += len(block)
            self._check_end()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        remaining = self.entry.bytes - self.position
        if remaining <= 0 or not len(buffer):
            return 0
        data = self._read(min(len(buffer), remaining))
        buffer[: len(data)] = data
        self.digest.update(data)
        self.position += len(data)
        if self.sink is not None:
            self.sink.write(data)
        self._check_end()
        return len(data)

    def finish(self) -> None:
        """Read what the consumer left (a tar's end padding, samples after a segment) so
        that the whole object is checked."""
        while self.readinto(memoryview(bytearray(1 << 20))):
            pass

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()

    def _read(self, size: int) -> bytes:
        failures = 0
        while True:
            try:
                if self._body is None:
                    self._body = self._open()
                data = self._body.read(size)
                if not data:
                    raise TransientError(
                        f"{self.url}: the connection ended at byte {self.position} of {self.entry.bytes}"
                    )
                return data
            except TransientError as err:
                if self._body is not None:
                    self._body.close()
                    self._body = None
                failures += 1
                if failures > self.retries:
                    raise RemoteError(
                        f"{err.message}; gave up after {self.retries} retries at byte {self.position} "
                        f"of {self.entry.bytes}: check the server and the network, then run again"
                    ) from None
                time.sleep(min(self.backoff_s * 2 ** (failures - 1), BACKOFF_CAP_S))

    def _open(self) -> Body:
        body, total = self.store.open(self.entry.name, self.position)
        if total not in (-1, self.entry.bytes):
            body.close()
            raise DigestError(
                f"{self.url} has {total} bytes, the manifest says {self.entry.bytes} (replaced or "
                "truncated); upload the split again or point at the matching manifest"
            )
        return body

    def _check_end(self) -> None:
        if self.position < self.entry.bytes or self.verified:
            return
        if self.position > self.entry.bytes or self.digest.hexdigest() != self.entry.sha256:
            raise DigestError(
                f"{self.url}: sha256 differs from the manifest (the shard was altered or replaced); "
                "upload the split again (scm-shards upload) or point at the matching manifest"
            )
        self.verified = True


def read_object(store: Store, name: str, retries: int, backoff_s: float) -> bytes:
    """A small object (a manifest) in one piece, with the same retries."""
    failures = 0
    while True:
        try:
            body, total = store.open(name)
            try:
                data = body.read()
            finally:
                body.close()
            if total not in (-1, len(data)):
                url = store.url_of(name)
                raise TransientError(f"{url}: the connection ended at byte {len(data)} of {total}")
            return data
        except TransientError as err:
            failures += 1
            if failures > retries:
                raise RemoteError(f"{err.message}; gave up after {retries} retries") from None
            time.sleep(min(backoff_s * 2 ** (failures - 1), BACKOFF_CAP_S))


def read_remote_manifest(store: Store, retries: int, backoff_s: float) -> Manifest:
    """The split's ``manifest.json`` read from its URL; clear errors when it is not one."""
    url = store.url_of(MANIFEST_NAME)
    try:
        return manifest_from_dict(json.loads(read_object(store, MANIFEST_NAME, retries, backoff_s)))
    except (KeyError, TypeError, ValueError) as err:
        raise RemoteError(f"{url} is not a valid manifest ({err}); upload the split again") from None
