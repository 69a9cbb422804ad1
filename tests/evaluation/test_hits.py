"""Hits per IoU threshold (the counting path, which skips hole boxes that cannot change
a hit) equal the literal protocol's; the hole sweep stops where asked."""

import cv2
import numpy as np
import pytest
from literal_protocol import literal_ious
from maps import noise, quantised_noise, random_gt, rings, smooth_upsampled, structured_maps

from scm_dist.evaluation.box_search.holes import hole_sweep
from scm_dist.evaluation.box_search.union_find import _descending_order, workspace
from scm_dist.evaluation.quantize import cam_thresholds, integer_thresholds, quantize
from scm_dist.evaluation.search import map_hits

TAUS = cam_thresholds(0.01)


def literal_hits(scoremap, gt, iou_thresholds, multi_contour):
    ious = literal_ious(scoremap, TAUS, gt, multi_contour)
    return np.stack([ious >= t / 100 for t in iou_thresholds]).astype(np.int64)


def assert_hits_identical(scoremap, gt, iou_thresholds):
    largest, every = map_hits(quantize(scoremap), TAUS, gt, iou_thresholds, True)
    np.testing.assert_array_equal(largest, literal_hits(scoremap, gt, iou_thresholds, False))
    np.testing.assert_array_equal(every, literal_hits(scoremap, gt, iou_thresholds, True))
    single, none = map_hits(quantize(scoremap), TAUS, gt, iou_thresholds, False)
    np.testing.assert_array_equal(single, largest)
    assert none is None


@pytest.mark.parametrize("iou_thresholds", [(30, 50, 70), (5, 95), (50,)])
def test_hits_equal_the_literal_protocol(iou_thresholds):
    rng = np.random.default_rng(sum(iou_thresholds))
    maps = list(structured_maps(rng))[::3] + [rings(rng) for _ in range(6)]
    maps += [noise(rng, (24, 31)), quantised_noise(rng, (30, 22), 3)]
    maps += [smooth_upsampled(rng, grid=8, size=64) for _ in range(4)]
    maps += [smooth_upsampled(rng, grid=8, size=64, interpolation=cv2.INTER_CUBIC) for _ in range(4)]
    for scoremap in maps:
        assert_hits_identical(scoremap, random_gt(rng, scoremap.shape), iou_thresholds)


def thick_ring():
    """Ring pixels 2..37 with a hole 10..29: the hole border's box [9, 9, 31, 31] is
    larger than any component's but the outer box [2, 2, 38, 38] covers it."""
    scoremap = np.zeros((44, 44), np.float32)
    scoremap[2:38, 2:38] = 1.0
    scoremap[10:30, 10:30] = 0.0
    return scoremap


def test_a_hole_box_is_the_only_hit_above_the_outer_box():
    gt = np.array([[9, 9, 31, 31]])  # IoU 1 with the hole, 529/1369 with the ring
    largest, every = map_hits(quantize(thick_ring()), TAUS, gt, (30, 50, 70), True)
    assert largest[0].all() and not largest[1:].any()
    assert every.all()
    assert_hits_identical(thick_ring(), gt, (30, 50, 70))


def test_hole_sweep_answers_only_the_wanted_thresholds():
    rng = np.random.default_rng(5)
    for scoremap in [rings(rng) for _ in range(4)] + [thick_ring()]:
        image = quantize(scoremap)
        levels = np.unique(integer_thresholds(TAUS, image))
        gt = random_gt(rng, image.shape)
        work = workspace(*image.shape)
        starts = _descending_order(image, work[-1])
        everywhere = hole_sweep(image, starts, levels, gt, np.ones(levels.size, np.bool_), work)
        wanted = rng.random(levels.size) < 0.3
        some = hole_sweep(image, starts, levels, gt, wanted, work)
        np.testing.assert_array_equal(some[wanted], everywhere[wanted])
        assert (some[~wanted] == -1).all()
    image = quantize(thick_ring())
    levels = np.unique(integer_thresholds(TAUS, image))
    work = workspace(*image.shape)
    best = hole_sweep(
        image,
        _descending_order(image, work[-1]),
        levels,
        np.array([[9, 9, 31, 31]]),
        np.ones(levels.size, np.bool_),
        work,
    )
    assert levels.size == 100 and (best == 1.0).all()  # the hole at every level
