"""The prepared GPU check (`python -m scm_dist.bench gpu`): --quick runs every step on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scm_dist.gpu import run

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quick_check_runs_every_step_on_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DS_ACCELERATOR": "cpu"}
    done = subprocess.run(
        [sys.executable, "-m", "scm_dist.bench", "gpu", "--quick", "--json", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(done.stdout) == report  # --json prints the same report
    steps = report["steps"]
    assert list(steps) == ["environment", "correctness", "train_step", "engine", "loader", "eval", "scm_tf32"]
    assert report["errors"] == [], {name: steps[name] for name in report["errors"]}
    correctness = steps["correctness"]
    assert correctness["fused_vs_naive_attention"]["logits"] < 1e-4
    assert correctness["fast_vs_literal_scm"]["grads"] < 1e-3
    assert correctness["scm_precision"]["tf32"]["output_error"] < 2e-2
    scm = steps["train_step"]["deit_scm_tiny"]
    assert scm["compiled"]["graph_breaks"]["count"] == 0
    assert all(scm[v]["images_per_s"] > 0 for v in ("eager", "compiled", "naive"))
    assert scm["flops_per_image"] > 0 and 0 < scm["eager"]["mfu"]
    for engine in ("accelerate_ddp_bf16", "deepspeed_zero2_bf16", "accelerate_ddp_bf16_gpu_decode"):
        assert steps["engine"][engine]["ok"], steps["engine"][engine]
    assert steps["engine"]["accelerate_ddp_bf16"]["resume_and_eval"]["eval"]["num_images"] == 16
    assert steps["loader"]["cpu_decode_webdataset"]["images_per_s"] > 0
    assert steps["loader"]["gpu_decode_webdataset"]["images_per_s"] > 0
    assert steps["eval"]["images_per_s"] > 0
    tf32 = steps["scm_tf32"]
    assert tf32["compiled_tf32"]["graph_breaks"]["count"] == 0 and tf32["eager_tf32"]["images_per_s"] > 0


def test_json_is_written_per_step_and_budget_skips(tmp_path):
    out = tmp_path / "check.json"
    report = run(["--quick", "--steps", "environment,eval", "--out", str(out)])
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(report, default=str))
    assert on_disk["steps"]["environment"]["versions"]["torch"]
    assert "no checkpoint" in on_disk["steps"]["eval"]["skipped"]  # no engine step ran before
    skipped = run(["--budget-s", "0", "--steps", "correctness", "--out", str(out)])
    assert skipped["steps"]["correctness"]["skipped"].startswith("time budget")
    assert json.loads(out.read_text())["steps"]["correctness"] == skipped["steps"]["correctness"]
    with pytest.raises(SystemExit):
        run(["--steps", "nonsense", "--out", str(out)])
