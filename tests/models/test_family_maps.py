"""Each family's localization map is its own release's: TS-CAM's ``TSCAM.forward`` (eval
branch) multiplies the class maps by the raw attention sum, SCM's test path by its
min-max normalised version; checkpoints in either release layout keep their family's map."""

import pytest
import timm
import torch
from release_layout import release_checkpoint

import scm_dist  # noqa: F401  (registers the models)
from scm_dist.models import DeiTWSOL
from scm_dist.models.wsol import LOCALIZATION_MAPS

TINY = dict(num_classes=4, img_size=32, patch_size=8, embed_dim=24, depth=3, num_heads=3)


def test_uniform_attention_by_hand():
    """q = k = 0: every softmax row is uniform, 1 / (N + 1). The attention sum over the
    3 blocks is 3 / 17 at each of the 16 patches, so TS-CAM's maps are 3/17 * S, while
    SCM's minmax of a constant is 0 and its maps are all zero."""
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    for use_scm, factor in ((False, 3 / 17), (True, 0.0)):
        model = DeiTWSOL(**TINY, use_scm=use_scm).eval()
        with torch.no_grad():
            for block in model.blocks:
                block.attn.qkv.weight[:48] = 0  # the q and k rows
                block.attn.qkv.bias[:48] = 0
            out = model(images)
        torch.testing.assert_close(out.attention, torch.full((2, 4, 4), factor))
        torch.testing.assert_close(out.cams, factor * out.class_maps)
        assert out.map_family == ("scm" if use_scm else "tscam")


def release_attention_maps(model, images):
    """Every block's softmax attention [B, heads, T, T], recomputed from the block's own
    input and weights the way the releases' timm ``Attention`` does."""
    maps = []

    def hook(attn, args):
        (x,) = args
        batch, tokens, dim = x.shape
        qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, dim // attn.num_heads)
        q, k, _ = qkv.permute(2, 0, 3, 1, 4)
        maps.append((q @ k.transpose(-2, -1) * attn.scale).softmax(dim=-1))

    hooks = [block.attn.register_forward_pre_hook(hook) for block in model.blocks]
    out = model(images)
    for handle in hooks:
        handle.remove()
    return out, maps


def tscam_release_cams(attn_weights, class_maps):
    """``TSCAM.forward``'s eval branch, step by step (vasgaowei/TS-CAM lib/models/deit.py)."""
    n, _, h, w = class_maps.shape
    attn_weights = torch.stack(attn_weights)  # blocks * B * heads * T * T
    attn_weights = torch.mean(attn_weights, dim=2)  # blocks * B * T * T
    cams = attn_weights.sum(0)[:, 0, 1:].reshape([n, h, w]).unsqueeze(1)
    return cams * class_maps


def scm_release_cams(attn_weights, class_maps):
    """The SCM release's test-path map: the same attention sum, min-max normalised."""
    n, _, h, w = class_maps.shape
    cams = torch.stack(attn_weights).mean(dim=2).sum(0)[:, 0, 1:]
    low, high = cams.amin(dim=1, keepdim=True), cams.amax(dim=1, keepdim=True)
    cams = ((cams - low) / (high - low)).reshape([n, h, w]).unsqueeze(1)
    return cams * class_maps


@pytest.mark.parametrize("family, release_cams", [("tscam", tscam_release_cams), ("scm", scm_release_cams)])
@pytest.mark.parametrize("attn_impl", ["fused", "naive"])
def test_release_checkpoint_gives_its_familys_maps(tmp_path, family, release_cams, attn_impl):
    torch.manual_seed(0)
    name = f"deit_{family}_tiny_patch16_224"
    source = timm.create_model(name, num_classes=5, img_size=64, depth=4)
    path = tmp_path / f"{family}_release.pth"
    torch.save(release_checkpoint(source), path)
    torch.manual_seed(1)  # a different init: everything must come from the file
    model = timm.create_model(
        name,
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(path)),
        num_classes=5,
        img_size=64,
        depth=4,
        attn_impl=attn_impl,
    )
    # float64: min-max of a nearly uniform attention CAM (random init) amplifies rounding
    model = model.double().eval()
    images = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        out, attn_weights = release_attention_maps(model, images)
    assert len(attn_weights) == 4 and attn_weights[0].shape == (3, 3, 17, 17)
    torch.testing.assert_close(out.cams, release_cams(attn_weights, out.class_maps))
    assert out.map_family == family and family in LOCALIZATION_MAPS


def test_the_two_formulas_differ_after_minmax_normalisation():
    """The maps the evaluation sees (each min-max normalised) are not the same for the
    two families' formulas on the same weights: the -min of minmax(A) does not cancel."""
    torch.manual_seed(0)
    tscam = DeiTWSOL(**TINY).eval()
    scm = DeiTWSOL(**TINY, use_scm=True).eval()
    scm.load_state_dict(tscam.state_dict(), strict=False)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = tscam(images).cams, scm(images).cams

    def norm(maps):
        flat = maps.flatten(2)
        low, high = flat.amin(-1, keepdim=True), flat.amax(-1, keepdim=True)
        return (flat - low) / (high - low)

    assert (norm(a) - norm(b)).abs().max() > 0.05
