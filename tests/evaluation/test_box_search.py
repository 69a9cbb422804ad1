"""The fast box search gives the literal protocol's boxes and IoUs at every threshold."""

import cv2
import numpy as np
import pytest
from literal_protocol import literal_boxes, literal_ious, release_scoremap, wsol_scoremap
from maps import (
    noise,
    quantised_noise,
    random_gt,
    rings,
    smooth_upsampled,
    structured_maps,
    thin_lines,
    tied_maxima,
)

from scm_dist.evaluation.box_search.components import component_sweep
from scm_dist.evaluation.quantize import cam_thresholds, integer_thresholds, quantize
from scm_dist.evaluation.search import map_ious, maps_ious

TAUS = cam_thresholds(0.01)


def assert_identical(scoremap, gt, taus=TAUS):
    fast = map_ious(quantize(scoremap), taus, gt, multi_contour=True)
    largest = literal_boxes(scoremap, taus, multi_contour=False)
    np.testing.assert_array_equal(fast.largest_boxes, np.concatenate(largest))
    np.testing.assert_array_equal(fast.largest_iou, literal_ious(scoremap, taus, gt, False))
    np.testing.assert_array_equal(fast.all_iou, literal_ious(scoremap, taus, gt, True))
    single = map_ious(quantize(scoremap), taus, gt, multi_contour=False)
    np.testing.assert_array_equal(single.largest_boxes, fast.largest_boxes)
    assert single.all_iou is None


def test_identity_on_structured_maps():
    rng = np.random.default_rng(0)
    for scoremap in structured_maps(rng):
        assert_identical(scoremap, random_gt(rng, scoremap.shape, most=3))


@pytest.mark.parametrize("seed", range(3))
def test_identity_on_noise_of_many_sizes(seed):
    rng = np.random.default_rng(100 + seed)
    for _ in range(25):
        shape = tuple(int(v) for v in rng.integers(1, 40, 2))
        scoremap = (
            noise(rng, shape) if rng.random() < 0.5 else quantised_noise(rng, shape, int(rng.integers(2, 6)))
        )
        assert_identical(scoremap, random_gt(rng, shape, most=3))


def test_identity_on_model_like_maps():
    rng = np.random.default_rng(7)
    for index in range(10):
        size = 224 if index < 4 else 64
        scoremap = smooth_upsampled(rng, grid=14 if size == 224 else 8, size=size)
        assert_identical(scoremap, random_gt(rng, scoremap.shape, most=3))


@pytest.mark.parametrize("protocol_map", [wsol_scoremap, release_scoremap])
def test_identity_on_each_protocols_score_maps(protocol_map):
    """Model-sized maps through each protocol's own resize and normalisation (wsol:
    bicubic, its overshoot below the minimum and above the maximum normalised in)."""
    rng = np.random.default_rng(8)
    overshoot = 0
    for index in range(8):
        grid, size = (14, 224) if index < 3 else (7, 56)
        class_map = rng.normal(size=(grid, grid)).astype(np.float32)
        if index % 2:
            class_map = np.where(class_map > 0.8, 3.0, 0.0).astype(np.float32)  # steps: ringing
        bicubic = cv2.resize(class_map, (size, size), interpolation=cv2.INTER_CUBIC)
        overshoot += bicubic.min() < class_map.min() or bicubic.max() > class_map.max()
        assert_identical(protocol_map(class_map, (size, size)), random_gt(rng, (size, size), most=3))
    for _ in range(4):
        scoremap = smooth_upsampled(rng, grid=8, size=64, interpolation=cv2.INTER_CUBIC)
        assert_identical(scoremap, random_gt(rng, scoremap.shape, most=3))
    assert overshoot >= 4


def test_identity_with_another_interval_and_float64_maps():
    rng = np.random.default_rng(3)
    taus = cam_thresholds(0.05)
    for _ in range(10):
        scoremap = smooth_upsampled(rng, grid=6, size=48).astype(np.float64)
        assert_identical(scoremap, random_gt(rng, scoremap.shape, most=3), taus)


def test_tied_largest_components_are_settled_by_opencv_order():
    """Two equal squares: which one is "largest" is OpenCV's list order."""
    scoremap = np.zeros((20, 30), np.float32)
    scoremap[3:7, 2:6] = 1.0
    scoremap[12:16, 20:24] = 1.0
    quantized = quantize(scoremap)
    levels = np.unique(integer_thresholds(TAUS, quantized))
    _, ties, _, _, _ = component_sweep(quantized, levels, np.zeros((1, 4), np.int64), True, False)
    assert ties.all()
    assert_identical(scoremap, np.array([[2, 3, 6, 7]]))
    assert_identical(scoremap, np.array([[20, 12, 24, 16]]))


def ring_and_blob(blob_value):
    """A thin square ring (small solid area, large area with its hole) and a solid
    blob whose own area is larger than the ring's pixels but smaller than the ring's
    outer contour area: the literal protocol picks the ring."""
    scoremap = np.zeros((40, 60), np.float32)
    scoremap[5:25, 5:25] = 1.0
    scoremap[6:24, 6:24] = 0.0  # ring: 76 pixels, contour area 361
    scoremap[8:26, 35:55] = blob_value  # blob: 360 pixels, contour area 323
    return scoremap


@pytest.mark.parametrize("blob_value", [1.0, 0.05])
def test_holes_count_in_the_largest_contour(blob_value):
    scoremap = ring_and_blob(blob_value)
    quantized = quantize(scoremap)
    levels = np.unique(integer_thresholds(TAUS, quantized))
    _, _, _, holes, uncertain = component_sweep(quantized, levels, np.zeros((1, 4), np.int64), True, False)
    assert holes.all() and uncertain.any()
    fast = map_ious(quantized, TAUS, np.array([[5, 5, 25, 25]]), multi_contour=True)
    np.testing.assert_array_equal(fast.largest_boxes[0], [5, 5, 25, 25])
    assert fast.largest_iou[0] == 1.0
    assert_identical(scoremap, np.array([[5, 5, 25, 25]]))
    # the hole's own box [6-1, 6-1, 23+2, 23+2] is a candidate with every contour
    assert_identical(scoremap, np.array([[6, 6, 23, 23]]))


def test_many_maps_in_one_call_equal_the_literal_protocol_map_by_map():
    """One call reuses its work arrays map after map; GT boxes shared by several maps,
    multi-contour on some: every map's results are still its own literal ones."""
    rng = np.random.default_rng(11)
    maps = [
        rings(rng, 40),
        thin_lines(rng, 40),
        tied_maxima(rng, 40),
        noise(rng, (40, 40)),
        quantised_noise(rng, (40, 40), 3),
        smooth_upsampled(rng, grid=8, size=40),
        ring_and_blob(1.0)[:40, :40],
        np.zeros((40, 40), np.float32),
        rings(rng, 40),
    ]
    gt = [random_gt(rng, (40, 40), most=3) for _ in range(4)]
    owner = rng.integers(0, len(gt), len(maps))
    multi = np.arange(len(maps)) % 2 == 0
    found = maps_ious(quantize(np.stack(maps)), TAUS, gt, owner, multi)
    for i, scoremap in enumerate(maps):
        largest = np.concatenate(literal_boxes(scoremap, TAUS, multi_contour=False))
        np.testing.assert_array_equal(found.largest_boxes[i], largest)
        np.testing.assert_array_equal(found.largest_iou[i], literal_ious(scoremap, TAUS, gt[owner[i]], False))
        every = literal_ious(scoremap, TAUS, gt[owner[i]], True) if multi[i] else -1.0
        np.testing.assert_array_equal(found.all_iou[i], np.broadcast_to(every, TAUS.shape))
