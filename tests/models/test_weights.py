"""Loading DeiT, official release and own checkpoints the timm way; export."""

import logging

import pytest
import timm
import torch
from release_layout import release_checkpoint

import scm_dist  # noqa: F401
from scm_dist.export import export_encoder
from scm_dist.export import main as export_main
from scm_dist.models import CheckpointMismatchError


def _load(name, path, **kwargs):
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)


def test_release_checkpoint_reproduces_outputs(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("deit_scm_tiny_patch16_224", num_classes=7, img_size=64)
    with torch.no_grad():
        for i, layer in enumerate(source.scm.layers):
            layer.lam.fill_(0.8 + 0.1 * i)
            layer.t.fill_(0.4 + 0.2 * i)
    path = tmp_path / "scm_release.pth"
    checkpoint = release_checkpoint(source)
    assert "module.layers.2.fuse._loss_rate" in checkpoint["state_dict"]
    torch.save(checkpoint, path)

    torch.manual_seed(123)  # a different init: everything must come from the file
    loaded = _load("deit_scm_tiny_patch16_224", path, num_classes=7, img_size=64)
    images = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded.train()(images), source.train()(images))
    out_a, out_b = loaded.eval()(images), source.eval()(images)
    torch.testing.assert_close(out_a.cams, out_b.cams)
    assert loaded.scm.layers[3].t.item() == pytest.approx(1.0)


def test_deit_checkpoint_drops_linear_head_and_resamples_pos_embed(tmp_path, caplog):
    torch.manual_seed(0)
    reference = timm.create_model("deit_tscam_tiny_patch16_224", num_classes=3)
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("head.")}
    state["head.weight"] = torch.randn(1000, 192)
    state["head.bias"] = torch.randn(1000)
    path = tmp_path / "deit_tiny_patch16_224.pth"
    torch.save({"model": state}, path)
    with caplog.at_level(logging.INFO):
        model = _load("deit_scm_tiny_patch16_224", path, num_classes=5, img_size=112)
    assert model.head.weight.shape == (5, 192, 3, 3)
    torch.testing.assert_close(model.blocks[4].mlp.fc1.weight, reference.blocks[4].mlp.fc1.weight)
    assert model.pos_embed.shape == (1, 50, 192)
    torch.testing.assert_close(model.cls_token, reference.cls_token)
    assert "dropping the linear classifier head" in caplog.text
    same_size = _load("deit_tscam_tiny_patch16_224", path, num_classes=5)
    torch.testing.assert_close(same_size.pos_embed, reference.pos_embed)


def test_mismatches_name_file_and_keys(tmp_path):
    model = timm.create_model("deit_tscam_tiny_patch16_224", num_classes=3)
    state = model.state_dict()
    state.pop("blocks.3.norm2.weight")
    state["blocks.0.attn.extra"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        _load("deit_tscam_tiny_patch16_224", path, num_classes=3)
    message = str(err.value)
    assert "broken.pth" in message and "blocks.3.norm2.weight" in message
    assert "blocks.0.attn.extra" in message
    with pytest.raises(CheckpointMismatchError, match=r"head.weight: file \(3, 192, 3, 3\)"):
        _load("deit_tscam_tiny_patch16_224", _saved(tmp_path / "k3.pth", model.state_dict()), num_classes=4)
    with pytest.raises(CheckpointMismatchError, match=r"shape mismatches: blocks.0.attn.proj.bias"):
        _load(
            "deit_tscam_small_patch16_224", _saved(tmp_path / "tiny.pth", model.state_dict()), num_classes=3
        )
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        _load("deit_tscam_tiny_patch16_224", tmp_path / "nope.pth", num_classes=3)


def _saved(path, state):
    torch.save({"state_dict": state}, path)
    return path


def test_export_encoder_only_gives_identical_eval_outputs(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("deit_scm_tiny_patch16_224", num_classes=4, img_size=64)
    with torch.no_grad():
        model.scm.layers[0].lam.fill_(3.0)
    src = _saved(tmp_path / "trained.pt", {f"module.{k}": v for k, v in model.state_dict().items()})
    out = tmp_path / "infer.pt"
    export_main(["--checkpoint", str(src), "--out", str(out)])
    exported = torch.load(out, weights_only=True)["state_dict"]
    assert not [k for k in exported if k.startswith("scm.")]
    assert export_encoder(src, tmp_path / "again.pt")["dropped_scm"] == 8
    images = torch.randn(2, 3, 64, 64)
    expected = model.eval()(images)
    got = _load("deit_scm_tiny_patch16_224", out, num_classes=4, img_size=64).eval()(images)
    assert got.map_family == expected.map_family == "scm"
    for field in ("logits", "cams", "attention", "class_maps"):
        assert torch.equal(getattr(got, field), getattr(expected, field)), field
    # the same encoder as a TS-CAM model: same class maps, TS-CAM's own localization map
    tscam = _load("deit_tscam_tiny_patch16_224", out, num_classes=4, img_size=64).eval()(images)
    assert tscam.map_family == "tscam"
    assert torch.equal(tscam.class_maps, expected.class_maps)
    _, raw_attention = model.encode(images)
    torch.testing.assert_close(tscam.cams, raw_attention.reshape(2, 1, 4, 4) * expected.class_maps)


def test_export_of_a_release_checkpoint_drops_its_scm_scalars(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("deit_scm_tiny_patch16_224", num_classes=4, img_size=64)
    src = tmp_path / "release.pth"
    torch.save(release_checkpoint(model), src)
    assert export_encoder(src, tmp_path / "infer.pt") == {
        "kept": len(model.state_dict()) - 8,
        "dropped_scm": 8,
    }
    exported = torch.load(tmp_path / "infer.pt", weights_only=True)["state_dict"]
    assert not [k for k in exported if k.startswith(("scm.", "layers.", "module."))]
    loaded = _load("deit_tscam_tiny_patch16_224", tmp_path / "infer.pt", num_classes=4, img_size=64)
    images = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded.eval()(images).class_maps, model.eval()(images).class_maps)
