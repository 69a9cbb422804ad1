"""ImageNet conversion: four val annotation formats, hard images, both formats read back by the
plain libraries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shard_fixtures import (
    WNIDS,
    build_imagenet,
    ffcv_image_sizes,
    read_ffcv,
    read_webdataset,
    save,
    write_annotations,
)

from data_shards.cli import main
from data_shards.schema import boxes_in_image_pixels, decode_sample_json, read_manifest

TRUNCATED = "ILSVRC2012_val_00000005"


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    truth = build_imagenet(root)
    return root, truth


def convert(*args: str) -> int:
    return main(["convert", *args])


def check_webdataset_samples(split_dir: Path, truth: dict) -> dict[str, dict]:
    """Every readable image exactly once, labels, boxes and sizes exact."""
    samples = read_webdataset(split_dir)
    keys = [s["__key__"] for s in samples]
    assert sorted(keys) == sorted(set(truth) - {TRUNCATED})
    for s in samples:
        t = truth[s["__key__"]]
        info = decode_sample_json(json.dumps(s["json"]))
        assert s["cls"] == t.label == info.label
        assert info.class_name == WNIDS[t.label]
        assert [list(b) for b in info.boxes] == t.boxes
        assert (info.width, info.height) == t.size
        assert s["jpg"].size == (info.image_width, info.image_height) == t.stored
        assert s["jpg"].mode == "RGB"
    return {s["__key__"]: s for s in samples}


def test_every_val_annotation_format_gives_the_same_exact_shards(imagenet, tmp_path):
    root, truth = imagenet
    digests = {}
    for fmt in ("xml", "loc-csv", "wsol", "val-folder"):
        (tmp_path / fmt).mkdir()
        ann = write_annotations(tmp_path / fmt, truth, fmt)
        out = tmp_path / f"out-{fmt}"
        assert (
            convert(
                "imagenet",
                "--root",
                str(root),
                "--split",
                "val",
                "--annotations",
                str(ann),
                "--format",
                "webdataset",
                "--out",
                str(out),
            )
            == 0
        )
        check_webdataset_samples(out / "val", truth)
        manifest = read_manifest(out / "val")
        assert manifest.images_in == 7 and manifest.total_samples == 6
        assert [s.source for s in manifest.skipped] == [f"val/{TRUNCATED}.JPEG"]
        assert "truncated" in manifest.skipped[0].reason
        assert manifest.boxes_clipped == 1
        assert manifest.total_boxes == sum(len(t.boxes) for k, t in truth.items() if k != TRUNCATED)
        assert manifest.classes == tuple(WNIDS)
        digests[fmt] = [s.sha256 for s in manifest.shards]
    assert len({tuple(d) for d in digests.values()}) == 1, digests


def test_both_formats_read_back_with_webdataset_and_ffcv(imagenet, tmp_path):
    root, truth = imagenet
    ann = write_annotations(tmp_path, truth, "xml")
    out = tmp_path / "out"
    assert (
        convert(
            "imagenet",
            "--root",
            str(root),
            "--split",
            "val",
            "--annotations",
            str(ann),
            "--format",
            "both",
            "--out",
            str(out),
            "--workers",
            "2",
        )
        == 0
    )
    wds_samples = check_webdataset_samples(out / "val", truth)
    by_id = {decode_sample_json(json.dumps(s["json"])).sample_id: k for k, s in wds_samples.items()}
    rows = read_ffcv(out / "val" / "val.beton")
    assert sorted(int(r[6][0]) for r in rows) == sorted(by_id)  # every sample exactly once
    sizes = ffcv_image_sizes(out / "val" / "val.beton")
    for row, size in zip(rows, sizes):
        key = by_id[int(row[6][0])]
        t = truth[key]
        assert int(row[1][0]) == t.label
        n = int(row[3][0])
        assert n == len(t.boxes)
        np.testing.assert_array_equal(row[2][:n], np.array(t.boxes, np.float32))
        assert not row[2][n:].any()
        assert (int(row[4][0]), int(row[5][0])) == t.size
        assert size == t.stored
    # the RGB JPEG is stored as its own bytes; CMYK, grey and PNG-named-JPEG become RGB JPEGs
    source = (root / "val" / "ILSVRC2012_val_00000001.JPEG").read_bytes()
    stored = dict(wds_samples)
    assert dict(_raw_jpegs(out / "val"))["ILSVRC2012_val_00000001"] == source
    for key in ("ILSVRC2012_val_00000002", "ILSVRC2012_val_00000003", "ILSVRC2012_val_00000004"):
        with Image.open(root / "val" / f"{key}.JPEG") as img:
            expected = np.asarray(img.convert("RGB"), np.float32)
        got = np.asarray(stored[key]["jpg"], np.float32)
        assert got.shape == expected.shape  # colours kept (an inverted CMYK would be off by ~100)
        np.testing.assert_allclose(got.mean(axis=(0, 1)), expected.mean(axis=(0, 1)), atol=4)
    assert main(["verify", str(out), "--deep"]) == 0


def _raw_jpegs(split_dir: Path):
    import tarfile

    for tar_path in sorted(split_dir.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar:
                if m.name.endswith(".jpg"):
                    yield m.name[:-4], tar.extractfile(m).read()


def test_more_boxes_than_max_boxes_is_an_error_never_a_silent_drop(imagenet, tmp_path, capsys):
    root, truth = imagenet
    ann = write_annotations(tmp_path, truth, "loc-csv")
    args = ["imagenet", "--root", str(root), "--split", "val", "--annotations", str(ann), "--max-boxes", "10"]
    assert convert(*args, "--format", "ffcv", "--out", str(tmp_path / "a")) == 2
    err = capsys.readouterr().err
    assert "ILSVRC2012_val_00000006.JPEG has 25 boxes" in err and "--max-boxes 25" in err
    assert convert(*args, "--format", "webdataset", "--out", str(tmp_path / "b")) == 0
    samples = read_webdataset(tmp_path / "b" / "val")
    many = [s for s in samples if s["__key__"] == "ILSVRC2012_val_00000006"][0]
    assert len(many["json"]["boxes"]) == 25


def test_max_side_shrinks_images_and_keeps_boxes_in_the_original_frame(imagenet, tmp_path):
    root, truth = imagenet
    ann = write_annotations(tmp_path, truth, "wsol")
    out = tmp_path / "out"
    assert (
        convert(
            "imagenet",
            "--root",
            str(root),
            "--split",
            "val",
            "--annotations",
            str(ann),
            "--format",
            "webdataset",
            "--max-side",
            "50",
            "--out",
            str(out),
        )
        == 0
    )
    for s in read_webdataset(out / "val"):
        info = decode_sample_json(json.dumps(s["json"]))
        t = truth[s["__key__"]]
        assert max(s["jpg"].size) == min(50, max(t.size))
        assert (info.width, info.height) == t.size and [list(b) for b in info.boxes] == t.boxes
        sx, sy = info.image_width / t.size[0], info.image_height / t.size[1]
        expected = np.array(t.boxes, np.float64).reshape(-1, 4) * [sx, sy, sx, sy]
        np.testing.assert_allclose(boxes_in_image_pixels(info), expected, rtol=1e-6)


def test_train_is_shuffled_so_every_shard_mixes_classes_and_takes_xml_boxes(imagenet, tmp_path):
    root, _ = imagenet
    boxes_dir = tmp_path / "train_xml" / WNIDS[1]
    boxes_dir.mkdir(parents=True)
    (boxes_dir / f"{WNIDS[1]}_2.xml").write_text(
        f"<annotation><size><width>56</width><height>34</height></size><object><name>{WNIDS[1]}</name>"
        "<bndbox><xmin>3</xmin><ymin>4</ymin><xmax>30</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    out = tmp_path / "out"
    assert (
        convert(
            "imagenet",
            "--root",
            str(root),
            "--split",
            "train",
            "--train-boxes",
            str(tmp_path / "train_xml"),
            "--format",
            "webdataset",
            "--shard-size-mb",
            "0.03",
            "--out",
            str(out),
            "--seed",
            "3",
        )
        == 0
    )
    manifest = read_manifest(out / "train")
    assert len(manifest.shards) >= 2
    import webdataset as wds

    for shard in manifest.shards:
        labels = [
            s["cls"] for s in wds.WebDataset(str(out / "train" / shard.name), shardshuffle=False).decode()
        ]
        assert len(set(labels)) > 1, f"{shard.name} holds one class only"
    samples = read_webdataset(out / "train")
    assert sorted(s["__key__"] for s in samples) == sorted(f"{w}_{i}" for w in WNIDS for i in range(4))
    for s in samples:
        assert s["cls"] == WNIDS.index(s["__key__"].split("_")[0])
        expected = [[3.0, 4.0, 30.0, 20.0]] if s["__key__"] == f"{WNIDS[1]}_2" else []
        assert s["json"]["boxes"] == expected
    order = [s["__key__"] for s in samples]
    assert order != sorted(order)


def test_class_sorted_val_takes_labels_from_folders(tmp_path):
    root = tmp_path / "in"
    truth = build_imagenet(root, flat_val=False)
    out = tmp_path / "out"
    assert (
        convert(
            "imagenet", "--root", str(root), "--split", "val", "--format", "webdataset", "--out", str(out)
        )
        == 0
    )
    samples = read_webdataset(out / "val")
    assert {s["__key__"]: s["cls"] for s in samples} == {
        k: t.label for k, t in truth.items() if k != TRUNCATED
    }
    assert all(s["json"]["boxes"] == [] for s in samples)


def test_strict_makes_a_truncated_image_fatal(imagenet, tmp_path, capsys):
    root, truth = imagenet
    ann = write_annotations(tmp_path, truth, "val-folder")
    assert (
        convert(
            "imagenet",
            "--root",
            str(root),
            "--split",
            "val",
            "--annotations",
            str(ann),
            "--format",
            "webdataset",
            "--strict",
            "--out",
            str(tmp_path / "out"),
        )
        == 2
    )
    assert f"val/{TRUNCATED}.JPEG" in capsys.readouterr().err


def test_layout_and_annotation_errors_name_the_path(tmp_path, capsys):
    root = tmp_path / "in"
    save(root / "val" / "ILSVRC2012_val_00000001.JPEG", 20, 20, 0)
    save(root / "train" / WNIDS[0] / "a.JPEG", 20, 20, 0)
    out = str(tmp_path / "out")
    cases = []
    assert convert("imagenet", "--root", str(tmp_path / "nope"), "--split", "val", "--out", out) == 2
    cases.append(str(tmp_path / "nope"))
    assert convert("imagenet", "--root", str(root), "--split", "val", "--out", out) == 2
    cases.append("flat")
    bad_wnid = tmp_path / "bad.csv"
    bad_wnid.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n99999999 1 1 5 5\n")
    assert (
        convert(
            "imagenet", "--root", str(root), "--split", "val", "--annotations", str(bad_wnid), "--out", out
        )
        == 2
    )
    cases.append("unknown wnid 'n99999999'")
    orphan = tmp_path / "orphan.csv"
    orphan.write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 1 5 5\n"
        "ILSVRC2012_val_00000099,n01440764 1 1 5 5\n"
    )
    assert (
        convert("imagenet", "--root", str(root), "--split", "val", "--annotations", str(orphan), "--out", out)
        == 2
    )
    cases.append("ILSVRC2012_val_00000099")
    inverted = tmp_path / "inverted.csv"
    inverted.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 9 1 5 5\n")
    assert (
        convert(
            "imagenet", "--root", str(root), "--split", "val", "--annotations", str(inverted), "--out", out
        )
        == 2
    )
    cases.append("x1 < x0")
    err = capsys.readouterr().err
    for expected in cases:
        assert expected in err, (expected, err)


def test_xml_annotation_missing_a_field_is_a_layout_error(tmp_path, capsys):
    root = tmp_path / "in"
    save(root / "val" / "ILSVRC2012_val_00000001.JPEG", 20, 20, 0)
    xml = tmp_path / "xml"
    xml.mkdir()
    (xml / "ILSVRC2012_val_00000001.xml").write_text(
        f"<annotation><object><name>{WNIDS[0]}</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox></object></annotation>"
    )
    out = str(tmp_path / "out")
    args = ("--root", str(root), "--split", "val", "--annotations", str(xml), "--out", out)
    assert convert("imagenet", *args) == 2
    err = capsys.readouterr().err
    assert "ILSVRC2012_val_00000001.xml: <bndbox> without <ymax>" in err, err
