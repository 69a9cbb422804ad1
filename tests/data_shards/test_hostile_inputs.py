"""Hostile and broken inputs to the converter and to `verify`: names from data never reach
the file system unchecked, bad boxes stop the conversion (or are left out and counted),
corrupt JPEGs are caught the way the loaders catch them, 16-bit PNGs keep their contrast."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from shard_fixtures import build_cub, build_folder, convert_folder_args, save

from data_shards.cli import main as shards_main
from data_shards.convert import ConversionError, ConvertOptions, convert_listing
from data_shards.decode import image_problem
from data_shards.manifest import verify_split
from data_shards.names import UnsafeNameError, contained_path, safe_file_stem
from data_shards.records import SourceListing, SourceRecord
from data_shards.schema import read_manifest
from data_shards.sources.cub import list_cub
from data_shards.sources.folder import list_folder


def garbage_tail(jpeg: bytes, keep: float = 0.6, seed: int = 0) -> bytes:
    """The JPEG with everything after ``keep`` of it replaced by random bytes (same length)."""
    cut = int(len(jpeg) * keep)
    return jpeg[:cut] + np.random.default_rng(seed).integers(0, 256, len(jpeg) - cut, np.uint8).tobytes()


def jpeg_bytes(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    save(path, width, height, seed)
    return path.read_bytes()


@pytest.mark.parametrize("key", ["", "a\nb", "..", "x" * 300])
def test_conversion_refuses_keys_that_are_not_plain_names(tmp_path, key):
    data = jpeg_bytes(tmp_path / "a.jpg")
    listing = SourceListing("folder", "val", ("c",), (SourceRecord(key, "src/a.jpg", 0, "c", data=data),))
    with pytest.raises(ConversionError, match="not a plain name"):
        convert_listing(listing, tmp_path / "out", ConvertOptions(formats=("webdataset",)), {})
    assert not list((tmp_path / "out").rglob("*.tar"))


def test_cub_image_paths_cannot_leave_the_images_folder(tmp_path):
    build_cub(tmp_path / "cub")
    outside = tmp_path / "secret.jpg"
    save(outside, 32, 32, 1)
    lines = (tmp_path / "cub" / "images.txt").read_text().splitlines()
    lines[3] = lines[3].split()[0] + " ../../secret.jpg"  # image 4 is a test image
    (tmp_path / "cub" / "images.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(UnsafeNameError, match=r"images\.txt \(image 4\).*\.\./\.\./secret\.jpg"):
        list_cub(tmp_path / "cub", "val")
    code = shards_main(
        ["convert", "cub", "--root", str(tmp_path / "cub"), "--split", "val", "--out", str(tmp_path / "o")]
    )
    assert code == 2


def test_name_helpers():
    assert safe_file_stem("ILSVRC2012_val_00000001") == "ILSVRC2012_val_00000001"
    for hostile in ("../../x", "/etc/passwd", "a/b", "..", ".", "", "a\x00b"):
        stem = safe_file_stem(hostile)
        assert stem and "/" not in stem and stem not in (".", "..") and not stem.startswith(".")
    assert safe_file_stem("a/b") != safe_file_stem("a_b")
    assert contained_path(Path("/r"), "a/b.jpg", "t") == Path("/r/a/b.jpg")
    for bad in ("../x", "/abs", "a/../../x", "", "a//b"):
        with pytest.raises(UnsafeNameError):
            contained_path(Path("/r"), bad, "t")


def _folder_with_boxes(tmp_path: Path, row: str) -> tuple[Path, Path]:
    root = tmp_path / "src"
    _, csv_path = build_folder(root)
    if row:
        csv_path.write_text(csv_path.read_text() + row + "\n")
    return root, csv_path


@pytest.mark.parametrize(
    "row, fault",
    [("cats/img0.jpg,nan,1,5,6", "non-finite"), ("cats/img0.jpg,500,400,600,450", "wholly outside")],
)
def test_bad_boxes_stop_the_conversion_or_are_left_out_and_counted(tmp_path, row, fault, capsys):
    root, csv_path = _folder_with_boxes(tmp_path, row)
    line = len(csv_path.read_text().splitlines())
    boxes = ("--boxes", str(csv_path))
    assert shards_main(convert_folder_args(root, tmp_path / "strict", *boxes)) == 2
    err = capsys.readouterr().err
    assert (
        f"{csv_path}:{line}: box" in err
        and "cats/img0.jpg" in err
        and fault in err
        and "--skip-bad-boxes" in err
    )
    assert not (tmp_path / "strict" / "val" / "manifest.json").exists()

    assert shards_main(convert_folder_args(root, tmp_path / "lenient", *boxes, "--skip-bad-boxes")) == 0
    split = tmp_path / "lenient" / "val"
    manifest = read_manifest(split)
    assert manifest.boxes_skipped == 1
    assert json.loads((split / "manifest.json").read_text())["totals"]["boxes_skipped"] == 1
    assert verify_split(split, deep=True) == []
    text = "".join(p.read_text(errors="replace") for p in split.glob("*.json"))
    assert "NaN" not in text


def test_plain_verify_checks_every_box(tmp_path):
    root, csv_path = _folder_with_boxes(tmp_path, "")
    convert_listing(
        list_folder(root, "val", csv_path), tmp_path / "o", ConvertOptions(formats=("webdataset",)), {}
    )
    split = tmp_path / "o" / "val"
    assert verify_split(split) == []
    tar_path = next(split.glob("*.tar"))
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]
    tampered = tmp_path / "t.tar"
    with tarfile.open(tampered, "w", format=tarfile.GNU_FORMAT) as tar:
        for member, data in members:
            if member.name.endswith(".json") and b'"boxes":[[' in data:
                info = json.loads(data)
                info["boxes"][0][0] = float("nan")
                data = json.dumps(info).encode()
                member.size = len(data)
                done = member.name
            tar.addfile(member, io.BytesIO(data))
    tampered.replace(tar_path)
    problems = verify_split(split)
    assert any(done.split(".")[0] in p and "non-finite" in p for p in problems), problems


def test_corrupt_jpeg_tail_is_caught_like_the_loaders(tmp_path):
    good = jpeg_bytes(tmp_path / "a.jpg", 96, 80)
    assert image_problem(good) is None
    bad = garbage_tail(good, 0.9)
    assert cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV keeps it
    assert "corrupt JPEG" in image_problem(bad)
    # the converter never stores such bytes as they are: it skips the image (PIL fails too)
    # or re-encodes what PIL decoded
    records = (
        SourceRecord("k", "src/a.jpg", 0, "c", data=bad),
        SourceRecord("g", "src/g.jpg", 0, "c", data=good),
    )
    convert_listing(
        SourceListing("folder", "val", ("c",), records),
        tmp_path / "o",
        ConvertOptions(formats=("webdataset",)),
        {},
    )
    assert verify_split(tmp_path / "o" / "val", deep=True) == []


def test_webdataset_only_conversion_with_no_readable_image_fails(tmp_path, capsys):
    root = tmp_path / "src"
    (root / "c").mkdir(parents=True)
    (root / "c" / "a.jpg").write_bytes(b"not an image")
    (root / "c" / "b.jpg").write_bytes(b"")
    code = shards_main(convert_folder_args(root, tmp_path / "o", "--format", "webdataset"))
    assert code == 2 and "no readable images" in capsys.readouterr().err


def test_16bit_png_keeps_its_contrast(tmp_path):
    root = tmp_path / "src"
    (root / "c").mkdir(parents=True)
    ramp = (np.linspace(0, 65535, 64)[None, :] * np.ones((16, 1))).astype(np.uint16)
    Image.fromarray(ramp).save(root / "c" / "ramp.png")
    with Image.open(root / "c" / "ramp.png") as im:
        assert im.mode.startswith("I")
    convert_listing(list_folder(root, "val"), tmp_path / "o", ConvertOptions(formats=("webdataset",)), {})
    tar_path = next((tmp_path / "o" / "val").glob("*.tar"))
    with tarfile.open(tar_path) as tar:
        jpeg = next(tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg"))
    grey = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), np.float64)[8]
    expected = np.linspace(0, 255, 64)
    assert np.abs(grey - expected).mean() < 4  # PIL's own conversion gives 255 from column 1 on
    assert grey[:4].mean() < 20 and grey[-4:].mean() > 235
