"""torch.compile of the model: same logits and gradients as eager, no graph break."""

import pytest
import torch

from scm_dist.models import create_wsol_model

TINY = dict(num_classes=5, img_size=32, depth=2, drop_path_rate=0.0)


def _logits_and_grads(run, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """Logits of ``run`` (the model or its compiled wrapper) and ``model``'s gradients."""
    model.zero_grad(set_to_none=True)
    logits = run(images)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", ["deit_scm_tiny_patch16_224", "deit_tscam_tiny_patch16_224"])
def test_compiled_model_matches_eager(name):
    torch.manual_seed(0)
    # float64: at init the attention rows are almost uniform and SCM's min-max of them turns
    # fp32 rounding differences between inductor's and eager kernels into ~10% differences of
    # the tiny t gradients; in float64 any real difference of the compiled graph still shows
    model = create_wsol_model(name, **TINY).train().double()
    images = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    labels = torch.tensor([0, 3, 4])
    eager_logits, eager_grads = _logits_and_grads(model, model, images, labels)
    torch._dynamo.reset()
    logits, grads = _logits_and_grads(torch.compile(model), model, images, labels)
    torch.testing.assert_close(logits, eager_logits, rtol=1e-9, atol=1e-12)
    assert grads.keys() == eager_grads.keys()
    if name.startswith("deit_scm"):
        assert "scm.layers.0.lam" in grads  # SCM ran inside the compiled graph
    for key, grad in grads.items():
        torch.testing.assert_close(grad, eager_grads[key], rtol=1e-7, atol=1e-12, msg=key)


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_train_forward_has_no_graph_break(precision):
    """The hot path (class-token row, head, SCM) traces into one graph."""
    model = create_wsol_model("deit_scm_tiny_patch16_224", scm_precision=precision, **TINY).train()
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 32, 32))
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1
