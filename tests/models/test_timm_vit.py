"""What the encoder gets from timm's VisionTransformer: gradient checkpointing (same
gradients, less kept for backward), no_weight_decay(), forward_features and
forward_intermediates."""

import pytest
import torch
from timm.models import VisionTransformer

from scm_dist.models import ClassTokenAttention, DeiTWSOL
from scm_dist.models.benchmark import SavedTensorMeter

TINY = dict(num_classes=4, img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3)


def _train_step(checkpointing: bool, attn_impl: str):
    torch.manual_seed(0)
    model = DeiTWSOL(**TINY, use_scm=True, drop_path_rate=0.2, attn_impl=attn_impl).double().train()
    model.set_grad_checkpointing(checkpointing)
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    meter = SavedTensorMeter(model)
    torch.manual_seed(1)  # the same drop-path draws (the checkpoint replays the rng state)
    with meter.hooks:
        logits = model(images)
    logits.logsumexp(dim=1).sum().backward()
    return logits, {name: p.grad for name, p in model.named_parameters()}, meter.activation_bytes


@pytest.mark.parametrize("attn_impl", ["fused", "naive"])
def test_grad_checkpointing_same_gradients_less_kept_for_backward(attn_impl):
    logits, grads, kept = _train_step(False, attn_impl)
    logits_ck, grads_ck, kept_ck = _train_step(True, attn_impl)
    torch.testing.assert_close(logits_ck, logits, rtol=0, atol=0)
    assert grads.keys() == grads_ck.keys()
    for name, grad in grads.items():
        assert grad is not None, name
        torch.testing.assert_close(grads_ck[name], grad, rtol=1e-12, atol=1e-14, msg=name)
    assert kept_ck < 0.6 * kept, (kept_ck, kept)


def test_checkpointing_only_when_gradients_are_recorded():
    torch.manual_seed(0)
    model = DeiTWSOL(**TINY).eval()
    images = torch.randn(2, 3, 32, 32)
    expected = model(images)
    model.set_grad_checkpointing(True)
    with torch.no_grad():
        got = model(images)
    assert got.map_family == expected.map_family
    for field in ("logits", "cams", "attention", "class_maps"):
        torch.testing.assert_close(getattr(got, field), getattr(expected, field), rtol=0, atol=0)


def test_no_weight_decay_and_timm_features():
    torch.manual_seed(0)
    model = DeiTWSOL(**TINY).eval()
    assert isinstance(model, VisionTransformer)
    assert {"pos_embed", "cls_token"} <= model.no_weight_decay()
    images = torch.randn(2, 3, 32, 32)
    tokens, _ = model.encode(images)
    features = model.forward_features(images)  # timm's: every token, normalised
    torch.testing.assert_close(features[:, 1:], tokens, rtol=0, atol=0)
    final, intermediates = model.forward_intermediates(images, indices=[0, 2])
    torch.testing.assert_close(final, features, rtol=0, atol=0)
    assert [tuple(x.shape) for x in intermediates] == [(2, 24, 4, 4)] * 2
    # timm's paths ask for no class-token row: none is computed or left behind
    assert all(attn.cls_attention is None for attn in model.attention_layers())


def test_attention_layer_rejects_what_it_cannot_compute_exactly():
    with pytest.raises(ValueError, match="neither attention dropout nor gating"):
        ClassTokenAttention(24, num_heads=3, attn_drop=0.1)
    attn = ClassTokenAttention(24, num_heads=3)
    with pytest.raises(ValueError, match="no attn_mask, no is_causal"):
        attn(torch.randn(1, 5, 24), is_causal=True)
    with pytest.raises(RuntimeError, match="set record_cls_attention first"):
        attn.pop_cls_attention()
