"""SCM precision: TF32 rounding, the CUDA TF32 product's gradients, errors vs float64."""

import pytest
import torch

from scm_dist.models import create_wsol_model
from scm_dist.models.scm import _CudaTF32Baddbmm, product, round_to_tf32
from scm_dist.models.scm_precision import precision_report


def test_round_to_tf32_keeps_ten_mantissa_bits_nearest_even():
    ulp = 2.0**-10
    # ties go to the even mantissa; in [2, 4) the step is 2 ulp
    values = torch.tensor([1.0 + ulp / 2, 1.0 + 1.5 * ulp, 1.0 + 0.4 * ulp, -(3.0 + 1.2 * ulp), 1e-20])
    rounded = round_to_tf32(values)
    assert rounded.tolist()[:4] == [1.0, 1.0 + 2 * ulp, 1.0, -(3.0 + 2 * ulp)]
    assert (rounded.view(torch.int32) & 0x1FFF == 0).all()
    x = torch.randn(1000)
    assert ((round_to_tf32(x) - x).abs() <= x.abs() * 2.0**-11).all()
    leaf = torch.randn(4, requires_grad=True)
    round_to_tf32(leaf).sum().backward()
    assert torch.equal(leaf.grad, torch.ones(4))  # straight through


def test_cuda_tf32_product_gradients():
    """The autograd function behind real TF32 (CUDA) has exact backward formulas (checked in
    float64 on the CPU, where the cuBLAS flag does nothing)."""
    torch.manual_seed(0)
    args = [torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    assert torch.autograd.gradcheck(lambda i, a, b: _CudaTF32Baddbmm.apply(i, a, b, 2.0, -1.0), args)
    assert torch.autograd.gradcheck(lambda a, b: _CudaTF32Baddbmm.apply(None, a, b, 1.0, 0.5), args[1:])


def test_emulated_tf32_product_differs_from_fp32_by_tf32_rounding():
    torch.manual_seed(0)
    a, b = torch.randn(2, 16, 16), torch.randn(2, 16, 16)
    exact = a.double() @ b.double()
    fp32, tf32 = product(a, b, "fp32"), product(a, b, "tf32")
    assert not torch.equal(fp32, tf32)
    assert (fp32.double() - exact).abs().max() < 1e-5
    assert 1e-5 < (tf32.double() - exact).abs().max() < 16 * 2.0**-10
    torch.testing.assert_close(product(a, b, "tf32_emulated"), tf32, rtol=0, atol=0)


def test_precision_report_orders_the_errors():
    report = precision_report(batch=2, classes=16, grid=6, first_iterations=16)
    floor = report["float64"]["newton_schulz_residual"]
    fp32, tf32 = report["fp32"], report["tf32"]
    assert abs(fp32["newton_schulz_residual"] - floor) < 1e-5
    assert abs(tf32["newton_schulz_residual"] - floor) < 1e-2
    for key in ("inverse_error", "output_error", "grad_error"):
        assert fp32[key] < tf32[key] < 2e-2, key


def test_model_takes_scm_precision():
    model = create_wsol_model(
        "deit_scm_tiny_patch16_224", num_classes=3, img_size=32, depth=1, scm_precision="tf32"
    )
    assert {layer.precision for layer in model.scm.layers} == {"tf32"}
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    tf32_logits = model.train()(images)
    for layer in model.scm.layers:
        layer.precision = "fp32"
    fp32_logits = model(images)
    assert not torch.equal(tf32_logits, fp32_logits)  # the products did run in TF32
    assert (tf32_logits - fp32_logits).abs().max() < 1e-2
    with pytest.raises(ValueError, match="SCM precision"):
        create_wsol_model(
            "deit_scm_tiny_patch16_224", num_classes=3, img_size=32, depth=1, scm_precision="bf16"
        )
