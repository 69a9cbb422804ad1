"""Corrupt images and hostile keys reach neither training nor evaluation unnoticed: both
loaders detect what `scm-shards verify --deep` detects, count it and skip it
(``data.skip_corrupt``) or stop naming the sample and its shard; keys that are not plain
names are refused."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from loader_fixtures import small_config, write_split

from data_shards.manifest import verify_split
from data_shards.schema import (
    FFCV_FIELDS,
    FFCV_IMAGE,
    FFCV_SAMPLE_ID,
    MANIFEST_NAME,
    WDS_IMAGE_KEY,
    WDS_INFO_KEY,
    WDS_LABEL_KEY,
)
from scm_dist.data import ShardError, build_eval_loader, build_train_loader


def garbage_tail(jpeg: bytes, keep: float = 0.6, seed: int = 0) -> bytes:
    cut = int(len(jpeg) * keep)
    return jpeg[:cut] + np.random.default_rng(seed).integers(0, 256, len(jpeg) - cut, np.uint8).tobytes()


def _rewrite_tar(directory: Path, key: str, change) -> None:
    """Rewrite the shard holding sample ``key``: ``change(name, data) -> (name, data)`` on each of
    its members; the manifest entry follows (size and sha256)."""
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    for entry in manifest["shards"]:
        path = directory / entry["name"]
        with tarfile.open(path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar]
        if not any(name.startswith(key + ".") for name, _ in members):
            continue
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name, data in members:
                if name.startswith(key + "."):
                    name, data = change(name, data)
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        path.write_bytes(buffer.getvalue())
        entry["bytes"], entry["sha256"] = (
            len(buffer.getvalue()),
            hashlib.sha256(buffer.getvalue()).hexdigest(),
        )
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))


def _jpeg_with_garbage_tail(name: str, data: bytes) -> tuple[str, bytes]:
    if not name.endswith(".jpg"):
        return name, data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
    bad = garbage_tail(jpeg, 0.6)
    assert cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV keeps it
    return name, bad


def test_webdataset_jpeg_with_garbage_tail_is_caught_counted_or_skipped(tmp_path, caplog):
    directory = tmp_path / "split"
    write_split(directory, 12, shard_size=4)
    _rewrite_tar(directory, "val_00005", _jpeg_with_garbage_tail)
    assert any("val_00005" in p and "does not decode" in p for p in verify_split(directory, deep=True))

    strict = build_train_loader(small_config(directory, "webdataset", workers=0))
    with pytest.raises(ShardError, match=r"val_00005 in shard .*val-000001\.tar.*corrupt JPEG.*skip_corrupt"):
        list(strict)
    lenient = build_train_loader(small_config(directory, "webdataset", workers=0, skip_corrupt=True))
    with caplog.at_level(logging.WARNING):
        seen = [key for _ in lenient for key in lenient.last_ids]
    assert len(seen) == 11 and "val_00005" not in seen and lenient.skipped_corrupt == 1
    with pytest.raises(ShardError, match="val_00005.*corrupt JPEG"):
        list(build_eval_loader(small_config(directory, "webdataset", workers=0)))


@pytest.mark.parametrize("where", ["tar member", "json key"])
def test_webdataset_keys_that_are_not_plain_names_are_refused(tmp_path, where):
    directory = tmp_path / "split"
    write_split(directory, 8, shard_size=4)

    def rename(name: str, data: bytes) -> tuple[str, bytes]:
        if where == "tar member":
            return "sub/" + name, data
        if name.endswith(".json"):
            info = json.loads(data)
            info["key"] = "../../evil"
            return name, json.dumps(info).encode()
        return name, data

    _rewrite_tar(directory, "val_00002", rename)
    if where == "tar member":
        with pytest.raises(ShardError, match=r"sample key 'sub/val_00002' in shard .*val-000000\.tar"):
            list(build_train_loader(small_config(directory, "webdataset", workers=0)))
    with pytest.raises(ShardError, match=r"not a plain name"):
        list(build_eval_loader(small_config(directory, "webdataset", workers=0)))


@pytest.mark.parametrize(
    "member, reader",
    [(WDS_IMAGE_KEY, "train"), (WDS_LABEL_KEY, "train"), (WDS_IMAGE_KEY, "eval"), (WDS_INFO_KEY, "eval")],
)
def test_webdataset_sample_without_a_member_it_needs_stops_naming_it(tmp_path, member, reader):
    directory = tmp_path / "split"
    write_split(directory, 8, shard_size=4)
    _rewrite_tar(directory, "val_00006", lambda name, data: (name.replace(f".{member}", ".unused"), data))
    build = build_train_loader if reader == "train" else build_eval_loader
    with pytest.raises(
        ShardError, match=rf"sample val_00006 in shard .*val-000001\.tar has no \.{member} member; reconvert"
    ):
        list(build(small_config(directory, "webdataset", workers=0)))


def _corrupt_in_beton(beton: Path, index: int) -> int:
    """Replace the tail of sample ``index``'s JPEG inside the .beton by garbage (same size);
    returns its sample_id."""
    from ffcv.reader import Reader

    reader = Reader(str(beton))
    row = reader.metadata[index]
    column = {name: f"f{i}" for i, name in enumerate(FFCV_FIELDS)}
    ptr = int(row[column[FFCV_IMAGE]]["data_ptr"])
    size = int(reader.alloc_table["size"][reader.alloc_table["ptr"] == ptr][0])
    data = bytearray(beton.read_bytes())
    data[ptr : ptr + size] = garbage_tail(bytes(data[ptr : ptr + size]), 0.5, seed=3)
    beton.write_bytes(bytes(data))
    return int(row[column[FFCV_SAMPLE_ID]])


def test_ffcv_corrupt_jpeg_is_caught_counted_or_skipped(split40, tmp_path, caplog):
    source, _ = split40
    directory = tmp_path / "split"
    directory.mkdir()
    for name in ("manifest.json", "val.beton"):
        (directory / name).write_bytes((source / name).read_bytes())
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest["formats"] = ["ffcv"]
    manifest["shards"] = [s for s in manifest["shards"] if s["format"] == "ffcv"]
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    sample_id = _corrupt_in_beton(directory / "val.beton", 7)
    assert any(
        f"sample_id {sample_id})" in p and "does not decode" in p for p in verify_split(directory, deep=True)
    )

    strict = build_train_loader(small_config(directory, "ffcv", workers=1))
    with pytest.raises(ShardError, match=rf"sample_id {sample_id} in .*val\.beton.*skip_corrupt"):
        for _ in strict:
            pass
    lenient = build_train_loader(small_config(directory, "ffcv", workers=1, skip_corrupt=True))
    with caplog.at_level(logging.WARNING):
        seen = [int(i) for _ in lenient for i in lenient.last_ids]
    assert len(seen) == 39 and sample_id not in seen and lenient.skipped_corrupt == 1
    assert "skipped 1 undecodable" in caplog.text
    with pytest.raises(ShardError, match=rf"sample_id {sample_id} in .*val\.beton"):
        list(build_eval_loader(small_config(directory, "ffcv", workers=1)))
