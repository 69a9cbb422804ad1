"""build_adamw: the same AdamW update as today's torch.optim.AdamW, faster kernels."""

import pytest
import torch

from scm_dist.engine.optim import param_groups
from scm_dist.models import create_wsol_model
from scm_dist.optim_build import adamw_kind, build_adamw

TINY = dict(num_classes=4, img_size=32, depth=1, drop_path_rate=0.0)


def _train(make_optimizer, steps: int = 3) -> dict[str, torch.Tensor]:
    """The model's weights after ``steps`` updates with the same gradients each time (a
    real backward's near-zero gradients, such as the key bias's, would let the kernels'
    rounding differences grow through Adam's normalisation)."""
    torch.manual_seed(0)
    model = create_wsol_model("deit_scm_tiny_patch16_224", **TINY).train()
    optimizer = make_optimizer(param_groups(model, 0.05))
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for param in model.parameters():
            param.grad = torch.randn(param.shape, generator=gen) * 1e-2
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("impl", ["auto", "fused", "foreach"])
def test_update_equals_todays_adamw(impl):
    kwargs = dict(lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    today = _train(lambda groups: torch.optim.AdamW(groups, **kwargs))
    built = _train(lambda groups: build_adamw(groups, impl=impl, **kwargs))
    start = _train(lambda groups: torch.optim.AdamW(groups, **kwargs), steps=0)
    assert any(not torch.equal(today[k], start[k]) for k in today)  # the steps moved the weights
    for name, value in built.items():
        torch.testing.assert_close(value, today[name], rtol=1e-5, atol=1e-7, msg=name)


def test_kind_follows_the_device():
    cpu_params = [torch.nn.Parameter(torch.zeros(2))]
    assert adamw_kind(cpu_params) == "foreach"
    optimizer = build_adamw([{"params": cpu_params, "weight_decay": 0.0}], lr=1e-3)
    assert optimizer.defaults["foreach"] is True and not optimizer.defaults["fused"]
    if torch.cuda.is_available():
        assert adamw_kind([torch.nn.Parameter(torch.zeros(2, device="cuda"))]) == "fused"
    with pytest.raises(ValueError, match="AdamW implementation"):
        adamw_kind(cpu_params, "apex")
