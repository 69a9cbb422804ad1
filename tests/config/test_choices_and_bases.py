"""Choice keys are checked when the config loads; YAML files inherit with ``base:``."""

import dataclasses
import typing
from pathlib import Path

import pytest
import torch.distributed as dist

from scm_dist.cli import eval_main, train_main
from scm_dist.config import ConfigError, ExperimentConfig, load_config

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "configs/experiments"


def _choice_keys(cls=ExperimentConfig, prefix="") -> dict[str, tuple[tuple, bool]]:
    """Every Literal-typed key: its choices and whether it holds a list of them."""
    found = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            found.update(_choice_keys(hint, f"{prefix}{f.name}."))
            continue
        is_list = typing.get_origin(hint) is list
        inner = typing.get_args(hint)[0] if is_list else hint
        if typing.get_origin(inner) is typing.Literal:
            found[f"{prefix}{f.name}"] = (typing.get_args(inner), is_list)
    return found


CHOICES = _choice_keys()


def test_the_choice_keys_are_typed_as_choices():
    assert set(CHOICES) >= {
        "model.name",
        "model.attn_impl",
        "model.scm_impl",
        "data.format",
        "data.ffcv_order",
        "optim.lr_scaling",
        "optim.schedule",
        "train.engine",
        "train.sharding",
        "train.precision",
        "eval.protocols",
    }


def test_the_choices_are_the_ones_the_code_knows():
    from scm_dist.data.ffcv_loader import ORDERS
    from scm_dist.evaluation import PROTOCOLS
    from scm_dist.models import ATTENTION_IMPLS, MODEL_NAMES, SCM_IMPLS

    assert set(CHOICES["model.name"][0]) == set(MODEL_NAMES)
    assert CHOICES["model.attn_impl"][0] == ATTENTION_IMPLS
    assert CHOICES["model.scm_impl"][0] == SCM_IMPLS
    assert CHOICES["data.ffcv_order"][0] == ORDERS
    assert CHOICES["eval.protocols"][0] == PROTOCOLS


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_a_bad_choice_is_one_line_naming_key_value_and_choices(key):
    choices, is_list = CHOICES[key]
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}={'[bogus]' if is_list else 'bogus'}"])
    message = str(err.value)
    assert "\n" not in message and f"{key}='bogus'" in message
    assert all(choice in message for choice in choices), message
    for choice in choices:  # every listed choice is accepted
        assert load_config(None, [f"{key}={[choice] if is_list else choice}"])


@pytest.mark.parametrize("main", [train_main, eval_main])
def test_bad_choice_stops_the_command_before_anything_starts(main, tmp_path):
    argv = ["--config", str(EXPERIMENTS / "synthetic_scm.yaml"), f"train.output_dir={tmp_path}/out"]
    if main is eval_main:
        argv += ["--checkpoint", str(tmp_path / "model.pt")]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "train.precision=fp8"])
    assert str(stop.value.code) == (
        f"scm-{'train' if main is train_main else 'eval'}: "
        "train.precision='fp8' is not one of the choices: fp32, bf16, fp16"
    )
    assert not dist.is_initialized() and not (tmp_path / "out").exists()


def test_eval_protocols_must_name_one():
    with pytest.raises(ConfigError, match="eval.protocols is empty"):
        load_config(None, ["eval.protocols=[]"])


def test_base_files_merge_section_by_section(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common/base.yaml").write_text(
        "name: base\nseed: 3\noptim:\n  lr: 0.5\n  decay_epochs: [1, 2]\ntrain:\n  epochs: 7\n"
    )
    (tmp_path / "child.yaml").write_text("base: common/base.yaml\nname: child\noptim:\n  decay_epochs: [4]\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.max_steps=2"])
    assert (cfg.name, cfg.seed, cfg.optim.lr, cfg.optim.decay_epochs) == ("child", 3, 0.5, [4])
    assert (cfg.train.epochs, cfg.train.max_steps) == (7, 2)


def test_base_mistakes_are_clear(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="base: files form a loop"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: gone.yaml\n")
    with pytest.raises(ConfigError, match=r"gone.yaml \(the base: of .*c.yaml\)"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("train:\n  engine: torch\n")
    (tmp_path / "e.yaml").write_text("base: d.yaml\n")
    with pytest.raises(ConfigError, match="train.engine='torch'"):
        load_config(tmp_path / "e.yaml")


PAIRS = [
    ("cub_deit_scm_small", "cub_deit_tscam_small"),
    ("imagenet_deit_scm_small", "imagenet_deit_tscam_small"),
    ("demo_scm", "demo_tscam"),
]


@pytest.mark.parametrize("scm_name,tscam_name", PAIRS)
def test_each_tscam_config_is_its_scm_config_but_for_the_model(scm_name, tscam_name):
    tscam_file = EXPERIMENTS / f"{tscam_name}.yaml"
    assert f"base: {scm_name}.yaml" in tscam_file.read_text()
    scm, tscam = load_config(EXPERIMENTS / f"{scm_name}.yaml"), load_config(tscam_file)
    assert tscam.name == tscam_name and tscam.model.name == scm.model.name.replace("_scm_", "_tscam_")
    assert tscam.train.output_dir != scm.train.output_dir
    tscam.name, tscam.model.name, tscam.train.output_dir = scm.name, scm.model.name, scm.train.output_dir
    assert tscam == scm
