"""Accelerate DDP on 2 CPU processes: learning, exact resume, bf16, the real launcher."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dist import run_ranks

REPO = Path(__file__).resolve().parents[2]


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _losses(output_dir: Path) -> list[float]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["train/loss"] for line in lines]


def test_ddp_fp32_learns_and_resume_is_bitwise(synthetic_shards, tmp_path):
    straight = tmp_path / "straight"
    job = dict(
        kind="train", shards=str(synthetic_shards), output_dir=str(straight), overrides=["train.max_steps=20"]
    )
    summaries = run_ranks(job, 2)
    assert summaries[0]["status"] == "completed" and summaries[0]["step"] == 20
    losses = _losses(straight)
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    # every collective of ours went through the runtime (checked on each call)
    assert summaries[0]["collectives"]["runtime.py:all_reduce"] >= 20

    resumed = tmp_path / "resumed"
    # the flag raised at the 9th step's poll is agreed at the next one: stop after step 10
    stopped = run_ranks(dict(job, output_dir=str(resumed), stop_after=9), 2)
    assert stopped[0]["status"] == "preempted" and stopped[0]["step"] == 10
    assert (resumed / "checkpoints" / "latest").read_text() == "step_00000010"
    finished = run_ranks(dict(job, output_dir=str(resumed)), 2)
    assert finished[0]["status"] == "completed" and finished[0]["step"] == 20

    a, b = _weights(straight / "model_final.pt"), _weights(resumed / "model_final.pt")
    assert a.keys() == b.keys() and any(k.startswith("scm.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    # the SCM scalars trained like every other parameter
    assert a["scm.layers.0.lam"].item() != 1.0


def test_gpu_decode_trains_and_resumes_bitwise(synthetic_shards, tmp_path):
    """data.decode=gpu (the decode runs on this CPU): JPEG bytes reach the train step, which
    decodes, crops, flips and normalises there; a stopped run resumes to the same weights."""
    job = dict(
        kind="train",
        shards=str(synthetic_shards),
        output_dir=str(tmp_path / "straight"),
        overrides=["train.max_steps=8", "train.log_every=4", "data.decode=gpu", "data.workers=2"],
    )
    assert run_ranks(job, 1)[0]["status"] == "completed"
    stopped = run_ranks(dict(job, output_dir=str(tmp_path / "resumed"), stop_after=3), 1)
    assert stopped[0]["status"] == "preempted" and stopped[0]["step"] == 4
    assert run_ranks(dict(job, output_dir=str(tmp_path / "resumed")), 1)[0]["step"] == 8
    a, b = _weights(tmp_path / "straight/model_final.pt"), _weights(tmp_path / "resumed/model_final.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    assert all(0 < loss < 10 for loss in _losses(tmp_path / "straight"))


def test_ddp_bf16_runs(synthetic_shards, tmp_path):
    job = dict(
        kind="train",
        shards=str(synthetic_shards),
        output_dir=str(tmp_path / "bf16"),
        overrides=["train.max_steps=6", "train.precision=bf16", "model.name=deit_tscam_tiny_patch16_224"],
    )
    summary = run_ranks(job, 2)[0]
    assert summary["status"] == "completed"
    losses = _losses(tmp_path / "bf16")
    assert losses and all(0 < loss < 10 for loss in losses)


def test_accelerate_launch_two_processes_really_train_together(synthetic_shards, tmp_path):
    """The shipped CPU accelerate config must give one world of 2, not 2 worlds of 1."""
    out = tmp_path / "launched"
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs/accelerate/cpu_2proc.yaml"),
        "-m",
        "scm_dist.cli_train",
        "--config",
        str(REPO / "configs/experiments/synthetic_scm.yaml"),
        f"data.train_dir={synthetic_shards}/train",
        f"data.val_dir={synthetic_shards}/val",
        f"train.output_dir={out}",
        "train.max_steps=3",
        "data.batch_size=8",
        "train.log_every=3",
        "eval.after_train=false",
        "train.expected_world_size=2",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trainer_state = torch.load(out / "checkpoints/step_00000003/trainer.pt", weights_only=False)
    assert trainer_state["identity"]["world_size"] == 2
    assert (out / "checkpoints/step_00000003/rank00001.pt").is_file()


def test_bad_inputs_fail_before_work(synthetic_shards, tmp_path):
    from engine_workers import make_config

    from scm_dist.app import train

    cfg = make_config(str(synthetic_shards), str(tmp_path), ["train.global_batch_size=20"])
    with pytest.raises(ValueError, match="not divisible by data.batch_size x world size"):
        train(cfg)
    cfg = make_config(str(tmp_path / "missing"), str(tmp_path), [])
    with pytest.raises(
        FileNotFoundError, match=r"data directory \S*missing/train does not exist; set data.train_dir"
    ):
        train(cfg)
    cfg = make_config(str(synthetic_shards), str(tmp_path), ["model.img_size=96"])
    with pytest.raises(ValueError, match="must equal data.crop_size"):
        train(cfg)


def test_fsdp_trains_and_resume_refuses_another_model_or_world(synthetic_shards, tmp_path):
    out = tmp_path / "fsdp"
    job = dict(
        kind="train",
        shards=str(synthetic_shards),
        output_dir=str(out),
        overrides=["train.max_steps=4", "train.sharding=fsdp", "train.log_every=2"],
    )
    assert run_ranks(job, 2)[0]["status"] == "completed"
    state = _weights(out / "model_final.pt")
    assert state["blocks.0.attn.qkv.weight"].shape == (576, 192) and "scm.layers.0.t" in state

    other_model = dict(
        job, overrides=job["overrides"] + ["model.name=deit_tscam_tiny_patch16_224", "train.max_steps=6"]
    )
    with pytest.raises(RuntimeError, match="was written for model='deit_scm_tiny_patch16_224'"):
        run_ranks(other_model, 2)
    with pytest.raises(RuntimeError, match="optimizer state sharded over 2 processes"):
        run_ranks(dict(job, overrides=job["overrides"] + ["train.max_steps=6"]), 1)
