"""scm-eval end to end: real shards, real model, 1, 2 and 3 ranks give identical results."""

import json

import pytest
import timm
import torch
from dist import run_ranks
from engine_workers import make_config

import scm_dist  # noqa: F401
from scm_dist.app import evaluate


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("deit_scm_tiny_patch16_224", num_classes=10, img_size=64, depth=3)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_one_two_three_ranks_identical(synthetic_shards, checkpoint, tmp_path):
    outputs = {}
    for world in (1, 2, 3):
        out = tmp_path / f"w{world}"
        job = dict(
            kind="evaluate",
            shards=str(synthetic_shards),
            output_dir=str(out),
            checkpoint=str(checkpoint),
            overrides=["data.eval_batch_size=7"],
        )
        (first, *_) = run_ranks(job, world)
        assert first["collectives"] == {"runtime.py:all_reduce": 1}  # the counters' sum
        results = json.loads((out / "eval" / "results.json").read_text())
        assert results.pop("world_size") == world
        assert results.pop("config")["train"]["output_dir"] == str(out)
        outputs[world] = results
    assert outputs[1]["num_images"] == 48
    assert outputs[1]["map_family"] == "scm" and outputs[1]["localization_map"].startswith("minmax(A)")
    assert outputs[1] == outputs[2] == outputs[3]
    wsol = outputs[1]["protocols"]["wsol"]
    assert set(wsol) >= {
        "MaxBoxAcc",
        "MaxBoxAccV2",
        "GT-known Loc",
        "Top-1 Loc",
        "Top-5 Loc",
        "Top-1 Cls",
        "Top-5 Cls",
    }
    assert (tmp_path / "w1/eval/threshold_curves.png").stat().st_size > 0
    assert len(list((tmp_path / "w1/eval/pictures").glob("*.png"))) == 8

    # eval.protocols chooses what is reported
    out = tmp_path / "release_only"
    job = dict(job, output_dir=str(out), overrides=["data.eval_batch_size=7", "eval.protocols=[scm-release]"])
    run_ranks(job, 1)
    release = json.loads((out / "eval/results.json").read_text())
    assert list(release["protocols"]) == ["scm-release"]
    assert release["protocols"]["scm-release"] == outputs[1]["protocols"]["scm-release"]


def test_checkpoint_that_does_not_match_config(synthetic_shards, checkpoint, tmp_path):
    cfg = make_config(str(synthetic_shards), str(tmp_path), ["model.name=deit_scm_small_patch16_224"])
    with pytest.raises(ValueError, match="shape mismatches"):
        evaluate(cfg, checkpoint)
    cfg = make_config(str(synthetic_shards), str(tmp_path), ["model.num_classes=5"])
    with pytest.raises(ValueError, match="has 10 classes but model.num_classes=5"):
        evaluate(cfg, checkpoint)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        evaluate(cfg, tmp_path / "nowhere.pt")
