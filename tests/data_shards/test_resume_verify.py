"""Resume after a kill, byte-identical output, and verify catching damaged files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from shard_fixtures import build_imagenet, write_annotations

from data_shards.cli import main
from data_shards.schema import read_manifest

SYNTH = ["synth", "--train", "1200", "--val", "0", "--image-size", "64", "--shard-size-mb", "0.1"]


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.suffix in (".tar", ".beton") or p.name == "_info.json"
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert main([*SYNTH, "--out", str(out)]) == 0
    return out


def test_resume_after_kill_gives_the_uninterrupted_result(reference, tmp_path):
    out = tmp_path / "killed"
    progress = out / "train" / ".progress.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_shards", *SYNTH, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if progress.is_file() and len(json.loads(progress.read_text())["shards"]) >= 3:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the conversion finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "train" / "manifest.json").exists()
    kept = json.loads(progress.read_text())["shards"]
    assert len(kept) >= 3
    # damage one finished shard: resume must notice (sha256) and redo it and what follows
    first = out / "train" / kept[1]["entry"]["name"]
    data = bytearray(first.read_bytes())
    data[700] ^= 0xFF
    first.write_bytes(bytes(data))
    assert main([*SYNTH, "--out", str(out)]) == 2  # unfinished: refuses without --resume
    assert main([*SYNTH, "--out", str(out), "--resume"]) == 0
    assert files(out / "train") == files(reference / "train")
    assert not list((out / "train").glob("*.tmp")) and not progress.exists()
    assert main(["verify", str(out), "--deep"]) == 0
    assert main([*SYNTH, "--out", str(out), "--resume"]) == 0  # finished: nothing to do
    assert main([*SYNTH, "--out", str(out)]) == 2  # finished: refuses to overwrite


def test_resume_refuses_other_options(tmp_path, capsys):
    out = tmp_path / "o"
    (out / "train").mkdir(parents=True)
    (out / "train" / ".progress.json").write_text(
        json.dumps({"fingerprint": {"other": 1}, "shards": [], "ffcv": None})
    )
    assert main([*SYNTH, "--out", str(out), "--resume"]) == 2
    assert "other inputs or options" in capsys.readouterr().err


def _flip(path: Path, offset: int) -> bytes:
    original = path.read_bytes()
    data = bytearray(original)
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    return original


def test_verify_catches_a_flipped_byte_and_names_shard_and_sample(reference, capsys):
    split = reference / "train"
    manifest = read_manifest(split)
    assert main(["verify", str(reference)]) == 0
    tar_path = split / manifest.shards_of("webdataset")[2].name
    with tarfile.open(tar_path) as tar:
        member = next(m for m in tar if m.name.endswith(".cls"))
    original = _flip(tar_path, member.offset_data)  # the label digit changes: tar still parses
    try:
        capsys.readouterr()
        assert main(["verify", str(reference)]) == 1
        err = capsys.readouterr().err
        assert f"{tar_path.name}: sha256 differs" in err
        assert main(["verify", str(reference), "--deep"]) == 1
        err = capsys.readouterr().err
        assert f"sample {member.name.split('.')[0]}: cls" in err
    finally:
        tar_path.write_bytes(original)
    beton = split / "train.beton"
    original = _flip(beton, beton.stat().st_size // 2)
    try:
        assert main(["verify", str(split)]) == 1
        assert "train.beton: sha256 differs" in capsys.readouterr().err
    finally:
        beton.write_bytes(original)
    assert main(["verify", str(reference), "--deep"]) == 0


def test_same_inputs_give_byte_identical_shards_whatever_the_workers(tmp_path):
    root = tmp_path / "in"
    truth = build_imagenet(root)
    ann = write_annotations(tmp_path, truth, "xml")
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        assert (
            main(
                [
                    "convert",
                    "imagenet",
                    "--root",
                    str(root),
                    "--split",
                    "val",
                    "--annotations",
                    str(ann),
                    "--out",
                    str(out),
                    "--workers",
                    workers,
                    "--shard-size-mb",
                    "0.02",
                ]
            )
            == 0
        )
        outs.append(files(out / "val"))
    assert len(outs[0]) >= 4 and outs[0] == outs[1]
