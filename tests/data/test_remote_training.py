"""2-process training (gloo, real processes) from a split served by nginx and by an S3
server equals training from the local copy: the same batches, so the same losses and
bitwise the same weights."""

import json

import pytest
import torch
from remote_train_worker import train_job

from data_shards.cli import main as shards_main
from scm_dist.data.remote_servers import nginx_serving
from scm_dist.engine.spawn import spawn_local


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    args = ["synth", "--out", str(root), "--train", "64", "--val", "8", "--image-size", "64", "--seed", "1"]
    assert shards_main([*args, "--shard-size-mb", "0.05"]) == 0
    return root


def _train(data: str, out) -> tuple[list[float], dict]:
    results = spawn_local(train_job, 2, ({"data": data, "output_dir": str(out)},), timeout=400)
    assert [r["status"] for r in results] == ["completed", "completed"] and results[0]["step"] == 6
    losses = [json.loads(line)["train/loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    weights = torch.load(out / "model_final.pt", map_location="cpu", weights_only=True)["state_dict"]
    return losses, weights


@pytest.fixture(scope="module")
def local_run(synth, tmp_path_factory):
    return _train(str(synth), tmp_path_factory.mktemp("local"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["http", "s3"])
def test_two_process_training_from_a_url_equals_local(synth, local_run, kind, s3_endpoint, tmp_path):
    if kind == "http":
        with nginx_serving(synth) as base:
            losses, weights = _train(base, tmp_path / "run")
    else:
        assert shards_main(["upload", str(synth), "s3://data/train-test"]) == 0
        losses, weights = _train("s3://data/train-test", tmp_path / "run")
    local_losses, local_weights = local_run
    assert len(losses) == 6 and losses == local_losses
    assert weights.keys() == local_weights.keys()
    for key in weights:
        assert torch.equal(weights[key], local_weights[key]), key
