"""AdamW groups as the SCM release builds them (timm create_optimizer): no weight decay for
parameters with ndim <= 1, SCM's lambda and t included, nor for pos_embed and cls_token."""

import timm
import torch

import scm_dist  # noqa: F401  (registers the models)
from scm_dist.engine.optim import param_groups


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_scm_scalars_norms_biases_and_embeddings_are_not_decayed():
    model = timm.create_model("deit_scm_tiny_patch16_224", num_classes=3, img_size=32, depth=2)
    groups = param_groups(model, 0.05)
    decayed = set().union(*(_names(model, g) for g in groups if g["weight_decay"] == 0.05))
    exempt = set().union(*(_names(model, g) for g in groups if g["weight_decay"] == 0.0))
    names = {name for name, _ in model.named_parameters()}
    assert decayed | exempt == names and not decayed & exempt
    scalars = {f"scm.layers.{i}.{s}" for i in range(4) for s in ("lam", "t")}
    assert scalars <= exempt
    assert {"pos_embed", "cls_token", "head.bias", "norm.weight", "blocks.1.attn.qkv.bias"} <= exempt
    expected = {n for n, p in model.named_parameters() if p.ndim > 1 and n not in ("pos_embed", "cls_token")}
    assert decayed == expected
    assert {"head.weight", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"} <= decayed


def test_an_adamw_step_without_gradient_signal_leaves_lambda_and_t_alone():
    """Zero gradients: AdamW only applies the decay, p <- p * (1 - lr * wd)."""
    torch.manual_seed(0)
    model = timm.create_model("deit_scm_tiny_patch16_224", num_classes=3, img_size=32, depth=2)
    with torch.no_grad():
        model.scm.layers[0].lam.fill_(1.0)
        model.scm.layers[0].t.fill_(0.5)
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    head = model.head.weight.detach().clone()
    optimizer.step()
    assert model.scm.layers[0].lam.item() == 1.0 and model.scm.layers[0].t.item() == 0.5
    torch.testing.assert_close(model.head.weight, head * (1 - 0.1 * 0.05))
