"""Resuming never runs code from a checkpoint, never silently starts over, and tells the
truth about the learning rate (issue 19, items 1, 3, 7 and 10)."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from engine_workers import make_config

from scm_dist.app import build_trainer, start_runtime
from scm_dist.engine import ResumeError
from scm_dist.engine.optim import lr_multiplier
from scm_dist.engine.run_log import RunLogger

DEEPSPEED = [
    "train.engine=deepspeed",
    "train.precision=bf16",
    "train.deepspeed_config=configs/deepspeed/zero2.json",
]


@pytest.mark.parametrize("overrides", [[], DEEPSPEED], ids=["accelerate", "deepspeed"])
def test_no_file_of_a_checkpoint_can_run_code_on_resume(synthetic_shards, tmp_path, overrides):
    job = dict(shards=str(synthetic_shards), output_dir=str(tmp_path), overrides=overrides)
    from safety_workers import resume_from_planted_files

    from scm_dist.engine.spawn import spawn_local

    errors = spawn_local(resume_from_planted_files, 1, (job,), timeout=900)[0]["errors"]
    expected = {"trainer.pt", "rank00000.pt"} | (
        {"model.pt", "optimizer.pt"} if not overrides else {"zero/mp_rank_00_model_states.pt"}
    )
    assert expected <= set(errors), errors
    assert not list(tmp_path.rglob("PWNED")), errors
    for name, message in errors.items():
        assert message.startswith("refusing to load") and name in message, (name, message)


def _trainer(cfg):
    """The run's trainer on this process's runtime (as the application layer builds it)."""
    return build_trainer(cfg, start_runtime(cfg))


def _base_run(shards: Path, out: Path, extra: list[str] = ()) -> None:
    """4 steps, a checkpoint every 2 (step_2 and step_4 kept)."""
    overrides = ["train.max_steps=4", "train.checkpoint_every=2", "train.keep_last=3", *extra]
    _trainer(make_config(str(shards), str(out), overrides)).run()


@pytest.fixture(scope="module")
def base_run(synthetic_shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base") / "run"
    _base_run(synthetic_shards, out, ["train.log_every=1"])
    return out


def _copy(base: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "run"
    shutil.copytree(base, out)
    return out, out / "checkpoints"


def _resumed_step(shards: Path, out: Path, overrides: list[str] = ()) -> int:
    trainer = _trainer(make_config(str(shards), str(out), ["train.max_steps=6", *overrides]))
    trainer.resume()
    return trainer.progress.step


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("pointer", ["step_00000009", "", "../../elsewhere"])
def test_bad_latest_falls_back_to_the_newest_complete_checkpoint(
    synthetic_shards, base_run, tmp_path, caplog, pointer
):
    out, root = _copy(base_run, tmp_path)
    (root / "latest").write_text(pointer)
    with caplog.at_level(logging.WARNING):
        assert _resumed_step(synthetic_shards, out) == 4
    assert f"resuming from the newest complete checkpoint {root / 'step_00000004'}" in caplog.text
    assert str(root / "latest") in caplog.text


def test_truncated_newest_checkpoint_falls_back_with_a_warning_naming_both(
    synthetic_shards, base_run, tmp_path, caplog
):
    out, root = _copy(base_run, tmp_path)
    _truncate(root / "step_00000004" / "model.pt")
    with caplog.at_level(logging.WARNING):
        assert _resumed_step(synthetic_shards, out) == 2
    assert f"{root / 'step_00000004' / 'model.pt'} is truncated" in caplog.text
    assert f"newest complete checkpoint {root / 'step_00000002'}" in caplog.text


def test_no_complete_checkpoint_stops_and_nothing_is_overwritten(synthetic_shards, base_run, tmp_path):
    out, root = _copy(base_run, tmp_path)
    shutil.rmtree(root / "step_00000002")
    (root / "step_00000004" / "complete.json").unlink()  # its writer was killed
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(ResumeError, match=r"incomplete .* train\.resume=<dir>.*train\.overwrite=true"):
        _trainer(make_config(str(synthetic_shards), str(out), ["train.max_steps=6"])).run()
    assert sorted(p.name for p in root.iterdir()) == before


def test_explicit_corrupt_checkpoint_names_the_file_and_the_older_one(synthetic_shards, base_run, tmp_path):
    out, root = _copy(base_run, tmp_path)
    model = root / "step_00000004" / "model.pt"
    data = bytearray(model.read_bytes())
    data[-200:] = bytes(200)  # same size, broken zip directory
    model.write_bytes(bytes(data))
    with pytest.raises(ResumeError) as err:
        _resumed_step(synthetic_shards, out, [f"train.resume={root / 'step_00000004'}"])
    assert f"{model} is truncated or corrupt" in str(err.value)
    assert f"train.resume={root / 'step_00000002'}" in str(err.value)
    _truncate(model)
    with pytest.raises(ResumeError, match=rf"{model} is truncated .*train\.resume={root / 'step_00000002'}"):
        _resumed_step(synthetic_shards, out, [f"train.resume={root / 'step_00000004'}"])


def test_start_over_only_when_asked(synthetic_shards, base_run, tmp_path):
    out, root = _copy(base_run, tmp_path)
    with pytest.raises(ResumeError, match="train.resume=none but .* holds checkpoints"):
        _resumed_step(synthetic_shards, out, ["train.resume=none"])
    assert (root / "step_00000004").is_dir()
    assert _resumed_step(synthetic_shards, out, ["train.resume=none", "train.overwrite=true"]) == 0
    assert not list(root.glob("step_*"))


def test_resume_with_another_lr_trains_with_the_new_schedule(synthetic_shards, base_run, tmp_path, caplog):
    out, _ = _copy(base_run, tmp_path)
    overrides = ["train.max_steps=6", "train.log_every=1", "optim.lr=1e-3"]
    cfg = make_config(str(synthetic_shards), str(out), overrides)
    trainer = _trainer(cfg)
    multiplier = lr_multiplier(cfg.optim, trainer.steps_per_epoch, trainer.total_steps)
    with caplog.at_level(logging.WARNING):
        trainer.run()
    assert "trained with peak LR 0.0002; this run continues from step 4 with peak LR 0.001" in caplog.text
    # the optimizer's LR after the last step, and every logged LR, follow the new peak
    assert trainer.backend.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * multiplier(6))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]  # no duplicated steps
    for record in records[4:]:
        assert record["train/lr"] == pytest.approx(1e-3 * multiplier(record["step"]))
    assert "lr: 0.001" in (out / "config.yaml").read_text()
    saved = torch.load(out / "checkpoints/step_00000006/trainer.pt", weights_only=True)
    assert saved["peak_lr"] == pytest.approx(1e-3)


def test_metrics_after_a_resume_have_no_duplicated_steps(tmp_path):
    lines = [json.dumps({"step": s, "train/loss": 1.0}) for s in (5, 10, 15)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 2')  # cut by a kill
    logger = RunLogger(tmp_path, True, total_steps=20, start_step=10)  # resumed from step 10
    logger.write(15, {"train/loss": 0.5})
    logger.close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15]
