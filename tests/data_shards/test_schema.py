"""The shard schema: sample json, FFCV box padding, manifest round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_shards.schema import (
    MANIFEST_NAME,
    Manifest,
    SampleInfo,
    ShardEntry,
    SkippedSample,
    boxes_from_ffcv,
    boxes_in_image_pixels,
    decode_sample_json,
    manifest_from_dict,
    pad_boxes,
    read_manifest,
)

INFO = SampleInfo(
    key="k",
    sample_id=7,
    label=3,
    class_name="n0",
    width=500,
    height=375,
    boxes=((10.0, 20.0, 110.0, 220.0), (0.0, 0.0, 499.0, 374.0)),
    image_width=100,
    image_height=75,
    source="val/k.JPEG",
)


def test_sample_json_round_trips_and_is_canonical():
    raw = INFO.to_json()
    assert decode_sample_json(raw) == INFO
    assert decode_sample_json(json.loads(raw)) == INFO
    assert raw == SampleInfo(**vars(INFO)).to_json()
    assert b" " not in raw and raw.index(b'"boxes"') < raw.index(b'"class_name"')


def test_boxes_in_image_pixels_scale_each_axis():
    np.testing.assert_allclose(boxes_in_image_pixels(INFO), [[2, 4, 22, 44], [0, 0, 99.8, 74.8]], rtol=1e-6)


def test_pad_boxes_round_trip_and_overflow():
    boxes = np.array(INFO.boxes)
    padded, n = pad_boxes(boxes, 4)
    assert padded.shape == (4, 4) and padded.dtype == np.float32 and n == 2 and not padded[2:].any()
    np.testing.assert_array_equal(boxes_from_ffcv(padded, np.array([n])), boxes.astype(np.float32))
    assert boxes_from_ffcv(*pad_boxes(np.zeros((0, 4)), 4)).shape == (0, 4)
    with pytest.raises(ValueError, match="3 boxes, more than max_boxes=2.*--max-boxes 3"):
        pad_boxes(np.zeros((3, 4)), 2, where="img.JPEG")


def test_manifest_round_trip_and_version_check(tmp_path):
    manifest = Manifest(
        1,
        "imagenet",
        "val",
        ("webdataset", "ffcv"),
        ("a", "b"),
        32,
        (
            ShardEntry("val-000000.tar", "webdataset", 2, 100, "ab"),
            ShardEntry("val.beton", "ffcv", 2, 300, "cd"),
        ),
        2,
        3,
        3,
        1,
        (SkippedSample("val/x.JPEG", "truncated"),),
        {"seed": 0},
    )
    data = manifest.to_dict()
    assert data["totals"] == {
        "samples": 2,
        "boxes": 3,
        "images_in": 3,
        "skipped": 1,
        "boxes_clipped": 1,
        "boxes_skipped": 0,
        "bytes": {"webdataset": 100, "ffcv": 300},
    }
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    assert read_manifest(tmp_path) == manifest
    with pytest.raises(ValueError, match="schema_version 9"):
        manifest_from_dict(data | {"schema_version": 9})
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        read_manifest(tmp_path / "missing")
