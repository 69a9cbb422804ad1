"""CUB-200-2011 and image-folder sources, read back with plain webdataset and ffcv."""

from __future__ import annotations

import json

import numpy as np
from shard_fixtures import (
    build_cub,
    build_folder,
    convert_folder_args,
    ffcv_image_sizes,
    read_ffcv,
    read_webdataset,
    save,
)

from data_shards.cli import main
from data_shards.schema import decode_sample_json, read_manifest


def test_cub_test_split_in_both_formats(tmp_path):
    root = tmp_path / "CUB_200_2011"
    truth = build_cub(root)
    out = tmp_path / "out"
    assert (
        main(
            ["convert", "cub", "--root", str(root), "--split", "test", "--format", "both", "--out", str(out)]
        )
        == 0
    )
    samples = read_webdataset(out / "test")
    assert sorted(s["__key__"] for s in samples) == sorted(truth)
    ids = {}
    for s in samples:
        t = truth[s["__key__"]]
        assert s["cls"] == t.label
        assert s["json"]["boxes"] == t.boxes  # x, y, w, h became x0, y0, x0 + w, y0 + h
        assert s["jpg"].size == t.size
        ids[s["json"]["sample_id"]] = s["__key__"]
    rows = read_ffcv(out / "test" / "test.beton")
    assert sorted(int(r[6][0]) for r in rows) == sorted(ids)
    for row, size in zip(rows, ffcv_image_sizes(out / "test" / "test.beton")):
        t = truth[ids[int(row[6][0])]]
        assert int(row[1][0]) == t.label and int(row[3][0]) == 1
        np.testing.assert_array_equal(row[2][:1], np.array(t.boxes, np.float32))
        assert size == t.size
    assert read_manifest(out / "test").classes == ("001.Black_footed_Albatross", "002.Laysan_Albatross")
    # timm's WebDataset reader finds the split through _info.json
    from timm.data.readers.reader_wds import ReaderWds

    reader = ReaderWds(root=str(out / "test"), split="test")
    assert len(reader) == len(truth)
    pairs = sorted((image.size, label) for image, label in reader)
    assert pairs == sorted((t.size, t.label) for t in truth.values())


def test_cub_listing_a_missing_image_is_a_clear_error(tmp_path, capsys):
    root = tmp_path / "CUB_200_2011"
    build_cub(root)
    next((root / "images").rglob("*_0004_*.jpg")).unlink()
    assert main(["convert", "cub", "--root", str(root), "--split", "test", "--out", str(tmp_path / "o")]) == 2
    assert "images.txt lists 1 image(s) that do not exist" in capsys.readouterr().err


def test_folder_with_boxes_csv(tmp_path):
    root = tmp_path / "pets"
    truth, csv_path = build_folder(root)
    out = tmp_path / "out"
    assert main(convert_folder_args(root, out, "--boxes", str(csv_path), "--format", "webdataset")) == 0
    samples = read_webdataset(out / "val")
    assert sorted(s["__key__"] for s in samples) == sorted(truth)
    for s in samples:
        info = decode_sample_json(json.dumps(s["json"]))
        t = truth[s["__key__"]]
        assert s["cls"] == t.label and [list(b) for b in info.boxes] == t.boxes
        assert s["jpg"].size == t.size
    import webdataset as wds

    raw = wds.WebDataset(str(out / "val" / "val-000000.tar"), shardshuffle=False)
    assert all(s["jpg"][:2] == b"\xff\xd8" for s in raw)  # PNGs became JPEGs
    assert read_manifest(out / "val").classes == ("cats", "dogs")


def test_folder_errors(tmp_path, capsys):
    root = tmp_path / "pets"
    _, csv_path = build_folder(root)
    with open(csv_path, "a") as f:
        f.write("cats/ghost.jpg,1,1,2,2\n")
    assert main(convert_folder_args(root, tmp_path / "o", "--boxes", str(csv_path))) == 2
    save(tmp_path / "flat" / "a.jpg", 10, 10, 0)
    assert main(convert_folder_args(tmp_path / "flat", tmp_path / "o2")) == 2
    err = capsys.readouterr().err
    assert "cats/ghost.jpg" in err and "no class subfolders" in err


def test_ffcv_only_leaves_no_staging_tars(tmp_path):
    root = tmp_path / "pets"
    truth, csv_path = build_folder(root)
    out = tmp_path / "out"
    assert main(convert_folder_args(root, out, "--boxes", str(csv_path), "--format", "ffcv")) == 0
    assert sorted(p.name for p in (out / "val").iterdir()) == ["manifest.json", "val.beton"]
    from ffcv.reader import Reader

    meta = Reader(str(out / "val" / "val.beton")).metadata
    labels = sorted(int(m["f1"]) for m in meta)
    assert labels == sorted(t.label for t in truth.values())
    assert sorted(int(m["f3"]) for m in meta) == sorted(len(t.boxes) for t in truth.values())
    assert main(["verify", str(out), "--deep"]) == 0
