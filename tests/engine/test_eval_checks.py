"""scm-eval refuses a checkpoint that does not fit the val set (issue 19, item 8)."""

import logging

import pytest
import timm
import torch
from engine_workers import make_config

import scm_dist  # noqa: F401
from scm_dist.app import evaluate


def _checkpoint(tmp_path, num_classes: int, img_size: int = 64):
    torch.manual_seed(0)
    model = timm.create_model(
        "deit_scm_tiny_patch16_224", num_classes=num_classes, img_size=img_size, depth=3
    )
    path = tmp_path / f"model_{num_classes}_{img_size}.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_checkpoint_with_another_class_count_than_the_val_set(synthetic_shards, tmp_path):
    checkpoint = _checkpoint(tmp_path, num_classes=12)  # the synthetic val set has 10
    cfg = make_config(str(synthetic_shards), str(tmp_path), ["eval.num_pictures=0"])
    with pytest.raises(ValueError, match=r"predicts 12 classes but the val set .*val has 10"):
        evaluate(cfg, checkpoint)
    assert not (tmp_path / "eval" / "results.json").exists()


def test_position_embedding_is_resampled_only_when_asked(synthetic_shards, tmp_path, caplog):
    checkpoint = _checkpoint(tmp_path, num_classes=10, img_size=64)  # a 4x4 grid
    base = ["data.eval_size=96", "eval.num_pictures=0", "eval.iou_thresholds=[50]"]
    cfg = make_config(str(synthetic_shards), str(tmp_path), base)
    with pytest.raises(ValueError, match="model.resample_pos_embed=true"):
        evaluate(cfg, checkpoint)
    cfg = make_config(str(synthetic_shards), str(tmp_path), [*base, "model.resample_pos_embed=true"])
    with caplog.at_level(logging.WARNING):
        results = evaluate(cfg, checkpoint)
    assert results["num_images"] == 48
    assert "resampling the position embedding from 17 to 37 tokens (6x6 grid" in caplog.text
