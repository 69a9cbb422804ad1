"""Score-map preparation matches each protocol's reference float32 steps; the benchmark runs."""

import cv2
import numpy as np
import pytest
from literal_protocol import release_scoremap, wsol_scoremap

from scm_dist.evaluation.benchmark import run
from scm_dist.evaluation.quantize import quantize
from scm_dist.evaluation.scoremaps import quantized_scoremaps, scoremap

REFERENCES = {"wsol": wsol_scoremap, "scm-release": release_scoremap}


@pytest.mark.parametrize("protocol", ["wsol", "scm-release"])
def test_scoremap_and_fused_quantisation_equal_the_reference_steps(protocol):
    rng = np.random.default_rng(0)
    overshoot = 0
    for index in range(200):
        scale, offset = rng.uniform(1e-3, 1e3), rng.normal() * rng.uniform(0, 1e3)
        class_map = (rng.normal(size=(7, 9)) * scale + offset).astype(np.float32)
        if index % 50 == 0:
            class_map[:] = offset  # constant: all zeros
        size = (int(rng.integers(8, 120)), int(rng.integers(8, 120)))
        scores = scoremap(class_map, size, protocol)
        np.testing.assert_array_equal(scores, REFERENCES[protocol](class_map, size))
        reference = quantize(scores)
        np.testing.assert_array_equal(quantized_scoremaps(class_map[None], size, protocol)[0], reference)
        assert reference.shape == size
        assert reference.max() in (0, 255)
        bicubic = cv2.resize(class_map, size[::-1], interpolation=cv2.INTER_CUBIC)
        overshoot += bool(bicubic.min() < class_map.min() or bicubic.max() > class_map.max())
    assert overshoot > 50  # the data exercise bicubic ringing beyond the map's range


def test_scoremap_resizes_bicubically_for_wsol():
    rng = np.random.default_rng(2)
    class_map = rng.normal(size=(14, 14)).astype(np.float32)
    wsol, release = scoremap(class_map, (224, 224)), scoremap(class_map, (224, 224), "scm-release")
    assert np.abs(wsol - release).max() > 0.05
    with pytest.raises(ValueError, match="protocol must be one of"):
        scoremap(class_map, (224, 224), "bilinear")


def test_nan_or_constant_maps_become_zeros_as_normalize_scoremap():
    nan_map = np.ones((5, 5), np.float32)
    nan_map[2, 2] = np.nan
    for protocol in ("wsol", "scm-release"):
        for class_map in (nan_map, np.full((5, 5), 7.0, np.float32)):
            assert not scoremap(class_map, (20, 20), protocol).any()
            assert not quantized_scoremaps(class_map[None], (20, 20), protocol).any()


@pytest.mark.parametrize("protocol", ["wsol", "scm-release"])
def test_quantised_maps_of_one_call_are_each_maps_own(protocol):
    """Several maps in one call (a constant one among them): each as if alone."""
    rng = np.random.default_rng(1)
    class_maps = (rng.normal(size=(5, 7, 9)) * rng.uniform(1e-2, 1e2, (5, 1, 1))).astype(np.float32)
    class_maps[2] = 3.0
    together = quantized_scoremaps(class_maps, (50, 70), protocol)
    for class_map, quantized in zip(class_maps, together):
        np.testing.assert_array_equal(quantized, quantize(scoremap(class_map, (50, 70), protocol)))


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
