"""``model.pretrained`` that is not a checkpoint: one clear error naming the file, nothing unpickled."""

from __future__ import annotations

import argparse
import tarfile

import pytest
import timm
import torch

import scm_dist.models  # noqa: F401  (registers the models)
from scm_dist.models.weights import CheckpointFileError

NAME = "deit_scm_tiny_patch16_224"


def _text(path):
    path.write_text("not a checkpoint\n")


def _tar(path):
    inner = path.with_name("inner.txt")
    inner.write_text("x")
    with tarfile.open(path, "w") as tar:
        tar.add(inner, arcname="inner.txt")


def _pickle_with_objects(path):
    torch.save({"model": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=1.0)}, path)


def _truncated(path):
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])


@pytest.mark.parametrize(
    "make, words",
    [
        (_text, "not a PyTorch checkpoint"),
        (_tar, "not a PyTorch checkpoint"),
        (_pickle_with_objects, "refuses to unpickle"),
        (_truncated, "not a PyTorch checkpoint|damaged or truncated"),
    ],
)
def test_pretrained_that_is_not_a_checkpoint_is_one_clear_error(tmp_path, make, words):
    path = tmp_path / "weights.pth"
    make(path)
    with pytest.raises(CheckpointFileError, match=words) as info:
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), num_classes=3)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert isinstance(info.value, ValueError)  # scm-train prints ValueErrors as one line


def test_a_real_checkpoint_still_loads(tmp_path):
    model = timm.create_model(NAME, num_classes=3)
    path = tmp_path / "own.pth"
    torch.save({"model": model.state_dict()}, path)
    loaded = timm.create_model(
        NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), num_classes=3
    )
    assert torch.equal(loaded.state_dict()["pos_embed"], model.state_dict()["pos_embed"])
