"""optim.min_lr is the cosine schedule's absolute floor (timm's lr_min), whatever the LR scaling."""

import pytest

from scm_dist.config import OptimConfig
from scm_dist.engine.optim import lr_multiplier, scaled_lr


def test_cosine_ends_at_the_absolute_min_lr_under_linear_scaling():
    cfg = OptimConfig(lr=1e-4, lr_scaling="linear", base_batch_size=256, schedule="cosine", min_lr=1e-6)
    peak = scaled_lr(cfg, 1024)
    assert peak == pytest.approx(4e-4)
    multiplier = lr_multiplier(cfg, steps_per_epoch=10, total_steps=100, peak_lr=peak)
    assert peak * multiplier(0) == pytest.approx(peak)
    assert peak * multiplier(100) == pytest.approx(1e-6)  # not 4e-6: the floor is not scaled
    assert peak * multiplier(50) == pytest.approx(1e-6 + (peak - 1e-6) / 2)


def test_min_lr_above_the_peak_is_refused():
    cfg = OptimConfig(lr=1e-4, lr_scaling="none", schedule="cosine", min_lr=1e-3)
    with pytest.raises(ValueError, match=r"optim.min_lr=0.001 is above the peak LR 0.0001"):
        lr_multiplier(cfg, steps_per_epoch=10, total_steps=100, peak_lr=1e-4)
