"""`python -m scm_dist.demo --quick` end to end: real shards, two real 2-process
`accelerate launch` trainings with distributed evaluation that beat the centred-box baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_shards.sources.synthetic import GENERATOR_VERSION
from scm_dist.demo import _synth_arguments, parse_args, reusable_shards

REPO = Path(__file__).resolve().parents[2]


def _run_demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scm_dist.demo", "--quick", "--out", str(out), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_quick_demo_end_to_end_and_shard_reuse(tmp_path):
    out = tmp_path / "demo"
    first = _run_demo(out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    summary = json.loads((out / "demo_results.json").read_text())
    table = summary["table"]
    assert set(table) == {"SCM", "TS-CAM", "centred box"}
    for name in ("SCM", "TS-CAM"):
        row = table[name]
        for metric in ("Top-1 Cls", "Top-1 Loc", "GT-known Loc", "MaxBoxAccV2"):
            assert 0.0 <= row[metric] <= 100.0
        assert row["Top-1 Loc"] <= min(row["Top-1 Cls"], row["GT-known Loc"])
        run = summary["runs"][name]
        results = json.loads(Path(run["eval"]).read_text())
        assert results["world_size"] == 2 and results["num_images"] == 32
        assert Path(run["checkpoint"]).is_file() and Path(run["threshold_curves"]).is_file()
        assert len(list(Path(run["pictures"]).glob("*.png"))) == 2
        assert "world_size" in Path(run["log"]).read_text()
    # the baseline is the manifest's measure on the same boxes (eval frame = image frame),
    # pinned: it depends on the seeded synthetic val set only
    baseline = table["centred box"]
    assert baseline["Top-1 Cls"] is None and baseline["Top-1 Loc"] is None
    manifest = summary["centred_box"]["manifest"]
    assert baseline["GT-known Loc"] == pytest.approx(100 * manifest["centred_box_accuracy_iou50"])
    assert summary["centred_box"]["val"]["per_iou"]["50"]["box_fraction"] == [
        manifest["centred_box_width_fraction"],
        manifest["centred_box_height_fraction"],
    ]
    assert (baseline["GT-known Loc"], round(baseline["MaxBoxAccV2"], 2)) == (9.375, 20.83)
    # even the quick run (3 steps of a 1-block model) localizes better than any centred box at
    # IoU 50; averaged over IoU 30/50/70 its all-contour boxes may only tie the best centred
    # boxes (SCM did, 20.83 each, on this CPU): 3 steps teach the maps little beyond IoU 50
    for name in ("SCM", "TS-CAM"):
        assert table[name]["GT-known Loc"] > baseline["GT-known Loc"], name
        assert table[name]["MaxBoxAccV2"] >= baseline["MaxBoxAccV2"], name
    assert summary["val_images"] == 32
    assert "SCM" in first.stdout and "centred box" in first.stdout

    # the second run reuses the shards (same files), --fresh rewrites them
    args = parse_args(["--quick", "--out", str(out)])
    assert (args.train_images, args.val_images, args.image_size) == (128, 32, 64)
    wanted = _synth_arguments(args)
    ok, reason = reusable_shards(out / "data", wanted)
    assert ok, reason
    assert not reusable_shards(out / "data", {**wanted, "train": 129})[0]
    # shards from an older generator are made again
    assert not reusable_shards(out / "data", {**wanted, "generator_version": GENERATOR_VERSION + 1})[0]


def test_damaged_shards_are_not_reused(tmp_path):
    out = tmp_path / "d"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "data_shards",
            "synth",
            "--out",
            str(out),
            "--train",
            "16",
            "--val",
            "8",
            "--image-size",
            "32",
            "--classes",
            "5",
        ],
        check=True,
        capture_output=True,
    )
    wanted = {
        "train": 16,
        "val": 8,
        "image_size": 32,
        "classes": 5,
        "seed": 0,
        "generator_version": GENERATOR_VERSION,
    }
    assert reusable_shards(out, wanted)[0]
    shard = next((out / "val").glob("*.tar"))
    shard.write_bytes(shard.read_bytes()[:-512])
    ok, reason = reusable_shards(out, wanted)
    assert not ok and shard.name in reason
