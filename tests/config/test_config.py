"""The experiment config: shipped files load, overrides apply, mistakes are clear."""

import json
from pathlib import Path

import pytest

from scm_dist.config import ConfigError, load_config, save_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "configs/experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiment_configs_load(path):
    cfg = load_config(path)
    assert cfg.model.img_size == cfg.data.crop_size
    if cfg.train.engine == "deepspeed":
        assert (REPO / cfg.train.deepspeed_config).is_file()


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_deepspeed_configs_are_json_with_their_stage(stage):
    ds = json.loads((REPO / f"configs/deepspeed/zero{stage}.json").read_text())
    assert ds["zero_optimization"]["stage"] == stage


def test_overrides_types_and_roundtrip(tmp_path):
    cfg = load_config(
        REPO / "configs/experiments/imagenet_deit_scm_small.yaml",
        [
            "optim.lr=1e-4",
            "optim.decay_epochs=[3,5]",
            "train.precision=fp32",
            "eval.after_train=false",
            "data.batch_size=16",
        ],
    )
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.decay_epochs == [3, 5] and cfg.data.batch_size == 16
    assert cfg.eval.after_train is False
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    "override,message",
    [
        ("optim.learning_rate=1", "unknown config key 'optim.learning_rate'"),
        ("trian.epochs=3", "Did you mean: train"),
        ("train.epochs=three", "train.epochs must be int"),
        ("eval.after_train=maybe", "eval.after_train must be true or false"),
        ("epochs", "must look like section.key=value"),
        ("model=3", "model is a section"),
    ],
)
def test_bad_overrides_are_clear(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
