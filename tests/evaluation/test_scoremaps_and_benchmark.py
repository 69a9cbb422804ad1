"""Score-map preparation matches the reference float32 steps; the benchmark runs."""

import numpy as np
import pytest

from scm_dist.evaluation.benchmark import run
from scm_dist.evaluation.quantize import quantize
from scm_dist.evaluation.scoremaps import quantized_scoremaps, scoremap


def test_fused_quantisation_equals_resize_minmax_then_uint8():
    rng = np.random.default_rng(0)
    for index in range(200):
        scale, offset = rng.uniform(1e-3, 1e3), rng.normal() * rng.uniform(0, 1e3)
        class_map = (rng.normal(size=(7, 9)) * scale + offset).astype(np.float32)
        if index % 50 == 0:
            class_map[:] = offset  # constant: all zeros
        size = (int(rng.integers(8, 120)), int(rng.integers(8, 120)))
        reference = quantize(scoremap(class_map, size))
        np.testing.assert_array_equal(quantized_scoremaps(class_map[None], size)[0], reference)
        assert reference.shape == size
        assert reference.max() in (0, 255)


def test_quantised_maps_of_one_call_are_each_maps_own():
    """Several maps in one call (a constant one among them): each as if alone."""
    rng = np.random.default_rng(1)
    class_maps = (rng.normal(size=(5, 7, 9)) * rng.uniform(1e-2, 1e2, (5, 1, 1))).astype(np.float32)
    class_maps[2] = 3.0
    together = quantized_scoremaps(class_maps, (50, 70))
    for class_map, quantized in zip(class_maps, together):
        np.testing.assert_array_equal(quantized, quantize(scoremap(class_map, (50, 70))))


def test_benchmark_reports_identical_counts_and_rates():
    result = run(
        [
            "--images",
            "6",
            "--literal-images",
            "3",
            "--classes",
            "8",
            "--grid",
            "7",
            "--size",
            "56",
            "--workers",
            "2",
            "--json",
        ]
    )
    assert result["identical_counts"] is True
    assert result["setup"]["cam_thresholds"] == 100
    # the ratios and projections are the benchmark's own rates combined (rounding aside)
    fast, literal, pool = (
        result[k] for k in ("fast_images_per_s", "literal_images_per_s", "pool_2_images_per_s")
    )
    assert result["speedup_one_core"] == pytest.approx(fast / literal, rel=0.02, abs=0.01)
    assert result["pool_2_speedup_vs_literal"] == pytest.approx(pool / literal, rel=0.02, abs=0.01)
    projected = result["projected_50k_val_s"]
    assert set(projected) == {"literal_one_core", "fast_one_core", "fast_pool_2"}
    for key, rate in (("literal_one_core", literal), ("fast_one_core", fast), ("fast_pool_2", pool)):
        assert projected[key] == pytest.approx(50000 / rate, rel=0.01), key
