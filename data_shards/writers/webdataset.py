"""WebDataset tar shards: deterministic tar members, size-based rollover, atomic shard files.

Each sample is three members in this order: ``key.jpg``, ``key.cls``, ``key.json`` (see
:mod:`data_shards.schema`). Member headers carry no time or owner, so the same samples give
byte-identical shards.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

from data_shards.records import PreparedSample
from data_shards.schema import (
    FORMAT_WEBDATASET,
    TIMM_INFO_NAME,
    WDS_IMAGE_KEY,
    WDS_INFO_KEY,
    WDS_LABEL_KEY,
    ShardEntry,
    wds_shard_name,
)
from data_shards.writers.atomic import commit, sha256_file, tmp_path, write_json_atomic

_BLOCK = 512
_RECORD = 20 * _BLOCK  # tarfile pads archives to whole records after the two end blocks


def sample_members(sample: PreparedSample) -> list[tuple[str, bytes]]:
    """The tar members of one sample, in order."""
    return [
        (f"{sample.key}.{WDS_IMAGE_KEY}", sample.jpeg),
        (f"{sample.key}.{WDS_LABEL_KEY}", str(sample.label).encode("ascii")),
        (f"{sample.key}.{WDS_INFO_KEY}", sample.to_json()),
    ]


def _member_bytes(data: bytes) -> int:
    return _BLOCK + -(-len(data) // _BLOCK) * _BLOCK


class TarShardWriter:
    """Writes samples into ``<split>-NNNNNN.tar`` files of about ``max_bytes`` each."""

    def __init__(self, folder: Path, split: str, max_bytes: int, first_index: int = 0) -> None:
        self.folder, self.split, self.max_bytes = folder, split, max_bytes
        self.index = first_index
        self._tar: tarfile.TarFile | None = None
        self._bytes = 0
        self._samples = 0

    def would_overflow(self, sample: PreparedSample) -> bool:
        """True when adding ``sample`` would push a non-empty shard past the size target."""
        size = sum(_member_bytes(data) for _, data in sample_members(sample))
        file_size = -(-(self._bytes + size + 2 * _BLOCK) // _RECORD) * _RECORD
        return self._samples > 0 and file_size > self.max_bytes

    def add(self, sample: PreparedSample) -> None:
        """Append one sample to the current shard (opening one if needed)."""
        if self._tar is None:
            self._tar = tarfile.open(tmp_path(self.path), "w", format=tarfile.GNU_FORMAT)
        for name, data in sample_members(sample):
            member = tarfile.TarInfo(name)
            member.size, member.mtime, member.mode = len(data), 0, 0o444
            self._tar.addfile(member, io.BytesIO(data))
            self._bytes += _member_bytes(data)
        self._samples += 1

    @property
    def path(self) -> Path:
        """Path of the shard being written."""
        return self.folder / wds_shard_name(self.split, self.index)

    def finish(self) -> ShardEntry | None:
        """Close the current shard (atomic rename) and return its entry; None if it is empty."""
        if self._tar is None:
            return None
        self._tar.close()
        commit(self.path)
        entry = ShardEntry(
            name=self.path.name,
            format=FORMAT_WEBDATASET,
            samples=self._samples,
            bytes=self.path.stat().st_size,
            sha256=sha256_file(self.path),
        )
        self._tar, self._bytes, self._samples = None, 0, 0
        self.index += 1
        return entry


def write_timm_info(folder: Path, split: str, shards: list[ShardEntry]) -> None:
    """``_info.json`` for timm's WebDataset reader (``--dataset wds/<name> --data-dir <folder>``)."""
    info = {
        "name": folder.name,
        "splits": {
            split: {
                "name": split,
                "num_samples": sum(s.samples for s in shards),
                "filenames": [s.name for s in shards],
                "shard_lengths": [s.samples for s in shards],
            }
        },
    }
    write_json_atomic(folder / TIMM_INFO_NAME, info)


def iter_tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` for each sample of a shard, in order (consecutive members)."""
    key, parts = None, {}
    with tarfile.open(path, "r") as tar:
        for member in tar:
            if not member.isfile():
                continue
            stem, _, ext = member.name.partition(".")
            if stem != key and key is not None:
                yield key, parts
                parts = {}
            key = stem
            data = tar.extractfile(member)
            assert data is not None  # a regular file (isfile above) always has a body
            parts[ext] = data.read()
    if key is not None:
        yield key, parts
