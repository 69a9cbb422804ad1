"""Efficient path (fused attention, fast SCM) vs the naive one (materialised attention,
literal SCM); gradcheck; bf16; bad input."""

import pytest
import timm
import torch

import scm_dist  # noqa: F401  (registers the models)
from scm_dist.models import DeiTWSOL, create_wsol_model

TINY = dict(num_classes=4, img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3)


def _pair(use_scm, **extra):
    torch.manual_seed(0)
    fused = DeiTWSOL(**TINY, use_scm=use_scm, **extra)
    naive = DeiTWSOL(**TINY, use_scm=use_scm, attn_impl="naive", scm_impl="literal", **extra)
    naive.load_state_dict(fused.state_dict())
    return fused, naive


@pytest.mark.parametrize("use_scm", [False, True])
def test_train_logits_and_gradients_match_naive(use_scm):
    # float64: SCM's 16 Newton-Schulz steps and min-max amplify float32 rounding, which
    # would hide a real difference behind loose tolerances
    fused, naive = (model.double() for model in _pair(use_scm))
    images = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    for model in (fused, naive):
        model.train()
        model(images).logsumexp(dim=1).sum().backward()
    torch.testing.assert_close(fused(images), naive(images), rtol=1e-10, atol=1e-10)
    for (name, p_fused), (_, p_naive) in zip(fused.named_parameters(), naive.named_parameters()):
        assert p_fused.grad is not None, name
        torch.testing.assert_close(p_fused.grad, p_naive.grad, rtol=1e-8, atol=1e-10, msg=name)


def test_eval_maps_match_naive_and_gradients_of_attention():
    # float64: timm's near-zero class-token init makes the attention rows almost uniform at
    # init, and min-max normalisation would amplify float32 rounding
    fused, naive = (model.double() for model in _pair(use_scm=True))
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    outs = []
    for model in (fused, naive):
        model.eval()
        out = model(images)
        (grad,) = torch.autograd.grad(out.cams.sum() + out.attention.square().sum(), images)
        outs.append((out, grad))
    (a, grad_a), (b, grad_b) = outs
    for field in ("logits", "cams", "attention", "class_maps"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(grad_a, grad_b, rtol=1e-8, atol=1e-10)
    assert a.cams.shape == (2, 4, 4, 4) and a.attention.shape == (2, 4, 4)
    assert a.attention.amin() == 0 and a.attention.amax() == 1


def test_attention_cam_equals_definition():
    """A = sum over blocks of the head-mean class-token row (checked by hooks on naive)."""
    torch.manual_seed(0)
    model = DeiTWSOL(**TINY, attn_impl="naive").eval()
    images = torch.randn(2, 3, 32, 32)
    rows = []
    hooks = [
        block.attn.register_forward_hook(lambda m, i, o: rows.append(m.cls_attention[:, 0, 1:]))
        for block in model.blocks
    ]
    _, attention = model.encode(images)
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(attention, torch.stack(rows).sum(0))
    model.set_attention_impl("fused")
    torch.testing.assert_close(model.encode(images)[1], attention, rtol=1e-5, atol=1e-6)


def test_gradcheck_tiny_model_float64():
    torch.manual_seed(0)
    model = (
        DeiTWSOL(num_classes=2, img_size=16, patch_size=8, embed_dim=6, depth=2, num_heads=2).double().train()
    )
    images = torch.randn(1, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (images,), eps=1e-6, atol=1e-5)
    model.eval()
    assert torch.autograd.gradcheck(lambda x: model(x).cams, (images,), eps=1e-6, atol=1e-5)


def test_eval_mode_runs_no_scm():
    torch.manual_seed(0)
    model = DeiTWSOL(**TINY, use_scm=True).eval()
    calls = []
    model.scm.register_forward_hook(lambda *a: calls.append(1))
    model(torch.randn(1, 3, 32, 32))
    assert calls == []
    model.train()(torch.randn(1, 3, 32, 32))
    assert calls == [1]


def test_tscam_train_logits_are_plain_gap():
    torch.manual_seed(0)
    model = DeiTWSOL(**TINY).train()
    images = torch.randn(2, 3, 32, 32)
    class_maps, _ = model.class_maps(images)
    torch.testing.assert_close(model(images), class_maps.mean(dim=(2, 3)))


# bf16 keeps 8 significant bits: round to nearest is within 2^-9 relative, on any CPU
BF16_ROUNDING = 2.0**-9


def test_bf16_autocast_close_to_fp32():
    """What bf16 autocast guarantees whatever the CPU's bf16 kernels (AMX, AVX512-BF16,
    emulated): every bf16 op rounds its inputs and output to 8 significant bits, so in a
    shallow model (2 blocks: about a dozen rounded ops in sequence, each within 2^-9 of
    the scale of its values) the class maps, attention CAM and TS-CAM logits stay within
    16 * 2^-9 of float32 relative to their scale. SCM's logits are not compared: at random
    init the attention CAM is nearly uniform and min-max normalising it turns bf16's
    rounding into O(1) changes (kernels that round differently give different logits);
    instead SCM must run in float32 inside autocast, on the bf16 encoder's outputs."""
    torch.manual_seed(0)
    model = DeiTWSOL(num_classes=5, img_size=64, depth=2, embed_dim=192, num_heads=3, use_scm=True).train()
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    parameters = [p for name, p in model.named_parameters() if not name.startswith("scm.")]
    class_maps, attention = model.class_maps(images)
    loss = torch.nn.functional.cross_entropy(class_maps.mean(dim=(2, 3)), labels)
    grads = torch.autograd.grad(loss, parameters)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_maps, low_attention = model.class_maps(images)
        low_loss = torch.nn.functional.cross_entropy(low_maps.mean(dim=(2, 3)), labels)
        scm_logits = model(images)
    tolerance = 16 * BF16_ROUNDING
    for low, ref in (
        (low_maps, class_maps),
        (low_attention, attention),
        (low_maps.mean(dim=(2, 3)), class_maps.mean(dim=(2, 3))),
    ):
        assert low.dtype == torch.bfloat16
        assert (low.float() - ref).abs().max() <= tolerance * ref.abs().max()
    low_grads = torch.autograd.grad(low_loss, parameters)
    cosine = torch.nn.functional.cosine_similarity(
        torch.cat([g.flatten() for g in grads]), torch.cat([g.float().flatten() for g in low_grads]), dim=0
    )
    assert cosine > 1 - tolerance
    # SCM in float32 under autocast: exactly SCM on the bf16 maps and attention
    assert scm_logits.dtype == torch.float32
    expected = model.scm(low_maps.float(), low_attention.float()).mean(dim=(2, 3))
    torch.testing.assert_close(scm_logits, expected)
    scm_logits.logsumexp(dim=1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.scm.layers[0].lam.grad.abs() > 0


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_registered_sizes_and_grids(size):
    for kind, has_scm in (("tscam", False), ("scm", True)):
        model = timm.create_model(
            f"deit_{kind}_{size}_patch16_224", num_classes=3, img_size=112, drop_path_rate=0.1
        )
        assert model.grid_size == (7, 7)
        assert (model.scm is not None) == has_scm
        if has_scm:
            assert model.scm.laplacian.shape == (49, 49)
    dims = {"tiny": 192, "small": 384, "base": 768}
    assert model.embed_dim == dims[size] and len(model.blocks) == 12


def test_bad_input_errors():
    model = timm.create_model("deit_tscam_tiny_patch16_224", num_classes=3, img_size=112)
    with pytest.raises(ValueError, match="built for 112x112"):
        model(torch.randn(1, 3, 224, 224))
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        timm.create_model("deit_scm_tiny_patch16_224", img_size=100)
    with pytest.raises(ValueError, match="did you mean deit_scm_small_patch16_224"):
        create_wsol_model("deit_scm_smal_patch16_224")
    with pytest.raises(ValueError, match="nothing is ever downloaded"):
        timm.create_model("deit_scm_tiny_patch16_224", pretrained=True)
