"""The full ImageNet-1K val annotation set (50,000 images, real sizes, labels, every box) with tiny
stand-in images, converted to both formats and checked box by box."""

from __future__ import annotations

import numpy as np
import pytest
from shard_fixtures import read_ffcv, read_webdataset

from data_shards.cli import main
from data_shards.reference_data import imagenet_val_folder_txt, imagenet_val_metadata
from data_shards.schema import read_manifest
from data_shards.sources.imagenet import read_val_folder_txt, read_wsol_metadata
from data_shards.standins import build_val_standins


@pytest.mark.slow
def test_full_imagenet_val_metadata_both_formats_every_box(tmp_path):
    meta, val_folder = imagenet_val_metadata(), imagenet_val_folder_txt()  # shipped in the package
    truth = read_wsol_metadata(meta)
    wnid_of = read_val_folder_txt(val_folder)
    assert build_val_standins(meta, tmp_path / "in") == len(truth) == 50000
    out = tmp_path / "out"
    assert (
        main(
            [
                "convert",
                "imagenet",
                "--root",
                str(tmp_path / "in"),
                "--split",
                "val",
                "--annotations",
                str(meta),
                "--classes",
                str(val_folder),
                "--format",
                "both",
                "--workers",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    manifest = read_manifest(out / "val")
    n_boxes = sum(len(a.boxes) for a in truth.values())
    assert (manifest.total_samples, manifest.total_boxes, len(manifest.skipped)) == (50000, n_boxes, 0)
    assert n_boxes == 80477 and manifest.boxes_clipped == 0 and len(manifest.classes) == 1000

    by_id = {}
    for s in read_webdataset(out / "val"):
        t, info = truth[s["__key__"]], s["json"]
        assert s["cls"] == t.label == info["label"]
        assert info["class_name"] == wnid_of[s["__key__"]].wnid
        assert (info["width"], info["height"]) == t.size  # the real size, not the stand-in's
        assert info["boxes"] == [list(b) for b in t.boxes]
        assert s["jpg"].size == (info["image_width"], info["image_height"])
        by_id[info["sample_id"]] = s["__key__"]
    assert len(by_id) == 50000

    seen = 0
    for row in read_ffcv(out / "val" / "val.beton", batch_size=1000):
        t = truth[by_id[int(row[6][0])]]
        n = int(row[3][0])
        assert int(row[1][0]) == t.label and n == len(t.boxes)
        assert (int(row[4][0]), int(row[5][0])) == t.size
        np.testing.assert_array_equal(row[2][:n], np.array(t.boxes, np.float32).reshape(-1, 4))
        seen += 1
    assert seen == 50000
