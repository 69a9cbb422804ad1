"""`python -m scm_dist.demo --quick` end to end: real shards, two real 2-process
`accelerate launch` trainings with distributed evaluation, the centred-box baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from data_shards.sources.synthetic import GENERATOR_VERSION
from scm_dist.demo import _synth_arguments, centred_scoremap, parse_args, reusable_shards
from scm_dist.evaluation import LocalizationEvaluator

REPO = Path(__file__).resolve().parents[2]


def _run_demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scm_dist.demo", "--quick", "--out", str(out), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_centred_scoremap_thresholds_to_centred_boxes():
    scores = centred_scoremap((8, 8))
    # pixel centres 3.5 px from the middle: rings of equal score, highest in the middle 2x2
    assert np.allclose(scores[3:5, 3:5], 1 - 0.5 / 4)
    assert np.allclose(scores[0], 1 - 3.5 / 4) and np.allclose(scores[:, 7], 1 - 3.5 / 4)
    assert (scores >= 1 - 1.5 / 4 - 1e-6).sum() == 16  # the centred 4x4 box
    # through the evaluator: a GT box equal to a centred box is found at every IoU threshold
    # (the protocol's contour box is one pixel larger: IoU 400 / 441 for this 20 x 20 box)
    scores = centred_scoremap((40, 40))
    evaluator = LocalizationEvaluator(
        image_size=(40, 40), iou_thresholds=(30, 50, 70), cam_curve_interval=0.05, topk=(1,)
    )
    cams = np.broadcast_to(scores, (2, 3, 40, 40))
    evaluator.update(
        np.zeros((2, 3)),
        cams,
        np.array([1, 2]),
        [np.array([[10, 10, 29, 29]], np.float32), np.array([[0, 0, 9, 9]], np.float32)],
    )  # a corner box: never centred
    wsol = evaluator.compute()["protocols"]["wsol"]
    assert wsol["GT-known Loc"]["acc"] == 50.0
    assert [v["acc"] for v in wsol["MaxBoxAccV2"]["per_iou"].values()] == [50.0, 50.0, 50.0]


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
    baseline = table["centred box"]
    assert baseline["Top-1 Cls"] is None and baseline["Top-1 Loc"] is None
    assert 0.0 <= baseline["GT-known Loc"] <= 100.0
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
