"""BoxAccuracy: hand-checked cases, the literal protocol, merging, bad input."""

import numpy as np
import pytest
import torch
from literal_protocol import literal_counts
from maps import smooth_upsampled

from scm_dist.evaluation import BoxAccuracy


def two_blobs():
    """A 4x4 blob (box [2, 2, 6, 6]) and a larger 8x6 blob (box [12, 10, 20, 16])."""
    scoremap = np.zeros((24, 24), np.float32)
    scoremap[2:6, 2:6] = 1.0
    scoremap[10:16, 12:20] = 1.0
    return scoremap


def test_two_blobs_largest_contour_versus_all_contours():
    gt = [np.array([[2, 2, 6, 6]])]  # the small blob
    largest = BoxAccuracy((50,), multi_contour=False)
    largest.update(two_blobs()[None], gt)
    every = BoxAccuracy((50,), multi_contour=True)
    every.update(two_blobs()[None], gt)
    assert largest.compute()["per_iou"][50]["acc"] == 0.0
    assert every.compute() == {
        "per_iou": {50: {"acc": 100.0, "cam_threshold": 0.0}},
        "mean": 100.0,
        "num_images": 1,
    }
    # the large blob is the largest contour: a GT on it is found either way
    on_large = BoxAccuracy((50,), multi_contour=False)
    on_large.update(two_blobs()[None], [np.array([[12, 10, 20, 16]])])
    assert on_large.compute()["per_iou"][50]["acc"] == 100.0


def test_constant_maps():
    zeros = np.zeros((1, 10, 12), np.float32)  # no contour at any threshold: [0,0,0,0]
    meter = BoxAccuracy((30, 50))
    meter.update(zeros, [np.array([[0, 0, 1, 1]])])  # IoU 1/4 with [0, 0, 0, 0]
    assert meter.correct.sum() == 0
    meter.update(zeros, [np.array([[0, 0, 0, 0]])])
    assert meter.compute()["per_iou"][50]["acc"] == 50.0
    ones = np.ones((1, 10, 12), np.float32)  # whole frame: box clipped to W-1, H-1
    meter = BoxAccuracy((50,), multi_contour=False)
    meter.update(ones, [np.array([[0, 0, 11, 9]])])
    assert meter.correct.tolist() == [[1] * 100]


def test_map_touching_the_border():
    scoremap = np.zeros((1, 20, 20), np.float32)
    scoremap[0, 10:20, 15:20] = 1.0  # box [15, 10, 20, 20] clipped to 19
    exact = BoxAccuracy((100,), multi_contour=False)
    exact.update(scoremap, [np.array([[15, 10, 19, 19]])])
    assert exact.compute()["per_iou"][100]["acc"] == 100.0
    half = BoxAccuracy((50, 70), multi_contour=False)  # IoU 50 / 100 with [10, 10, 19, 19]
    half.update(scoremap, [np.array([[10, 10, 19, 19]])])
    result = half.compute()["per_iou"]
    assert (result[50]["acc"], result[70]["acc"]) == (100.0, 0.0)
    top_left = np.zeros((1, 20, 20), np.float32)
    top_left[0, 0:3, 0:4] = 1.0  # x1 = 0 + 4 = 4, y1 = 3: not clipped
    meter = BoxAccuracy((100,))
    meter.update(top_left, [np.array([[0, 0, 4, 3]])])
    assert meter.compute()["mean"] == 100.0


def test_fractional_gt_boxes_are_truncated_to_pixels():
    exact = BoxAccuracy((100,))
    exact.update(two_blobs()[None], [np.array([[2, 2, 6, 6]])])
    fractional = BoxAccuracy((100,))
    fractional.update(two_blobs()[None], [np.array([[2.7, 2.2, 6.9, 6.5]], np.float32)])
    np.testing.assert_array_equal(fractional.counts(), exact.counts())
    assert exact.compute()["mean"] == 100.0


def test_best_gt_box_counts():
    meter = BoxAccuracy((100,))
    meter.update(two_blobs()[None], [np.array([[0, 0, 1, 1], [12, 10, 20, 16]])])
    assert meter.compute()["mean"] == 100.0


@pytest.mark.parametrize("multi_contour", [False, True])
def test_counts_equal_the_literal_protocol_and_merge_in_any_split(multi_contour):
    rng = np.random.default_rng(11)
    maps = np.stack([smooth_upsampled(rng, grid=8, size=64) for _ in range(9)])
    boxes = [np.array([[8, 10, 40, 50]]), np.array([[0, 0, 63, 63], [20, 20, 30, 30]])] * 4 + [
        np.array([[30, 5, 60, 25]])
    ]
    whole = BoxAccuracy((30, 50, 70), multi_contour=multi_contour)
    whole.update(maps, boxes)
    np.testing.assert_array_equal(
        whole.correct, literal_counts(maps, boxes, whole.taus, (30, 50, 70), multi_contour)
    )
    for cuts in ([4], [1, 2, 8], [0, 9]):
        merged = BoxAccuracy((30, 50, 70), multi_contour=multi_contour)
        for start, stop in zip([0, *cuts], [*cuts, 9]):
            part = BoxAccuracy((30, 50, 70), multi_contour=multi_contour)
            if stop > start:
                part.update(torch.from_numpy(maps[start:stop]), boxes[start:stop])
            merged.merge(part)
        assert merged.compute() == whole.compute()
        np.testing.assert_array_equal(merged.counts(), whole.counts())
    reloaded = BoxAccuracy((30, 50, 70), multi_contour=multi_contour)
    reloaded.load_counts(torch.from_numpy(whole.counts()))
    assert reloaded.compute() == whole.compute()


def test_worker_processes_give_the_same_counts():
    rng = np.random.default_rng(5)
    maps = np.stack([smooth_upsampled(rng, grid=6, size=32) for _ in range(6)])
    boxes = [np.array([[4, 4, 20, 24]])] * 6
    alone = BoxAccuracy()
    alone.update(maps, boxes)
    pooled = BoxAccuracy(workers=2)
    try:
        pooled.update(maps, boxes)
    finally:
        pooled.close()
    np.testing.assert_array_equal(pooled.counts(), alone.counts())


@pytest.mark.parametrize(
    "maps, boxes, message",
    [
        (np.full((1, 4, 4), np.nan, np.float32), [np.array([[0, 0, 1, 1]])], "non-finite"),
        (np.full((1, 4, 4), 1.5, np.float32), [np.array([[0, 0, 1, 1]])], r"\[0, 1\]"),
        (np.full((1, 4, 4), -0.1, np.float32), [np.array([[0, 0, 1, 1]])], r"\[0, 1\]"),
        (np.zeros((4, 4), np.float32), [np.array([[0, 0, 1, 1]])], r"\[B, H, W\]"),
        (np.zeros((1, 4, 4), np.uint8), [np.array([[0, 0, 1, 1]])], "floats"),
        (np.zeros((1, 4, 4), np.float32), [np.array([[3, 0, 1, 1]])], "x1 < x0"),
        (np.zeros((1, 4, 4), np.float32), [np.zeros((0, 4))], "empty"),
        (np.zeros((2, 4, 4), np.float32), [np.array([[0, 0, 1, 1]])], "1 GT box lists for 2"),
        (np.zeros((1, 4, 4), np.float32), [np.array([[-1, 0, 1, 1]])], "negative"),
        (np.zeros((1, 4, 4), np.float32), [np.array([[0, np.inf, 1, 1]])], "non-finite"),
        (np.zeros((1, 4, 4), np.float32), [np.array([[0, 0, 1]])], r"\(n, 4\)"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(maps, boxes, message):
    with pytest.raises(ValueError, match=message):
        BoxAccuracy().update(maps, boxes)


def test_bad_configuration_and_state():
    with pytest.raises(ValueError, match="percentages"):
        BoxAccuracy((0.5,))
    with pytest.raises(ValueError, match="no images"):
        BoxAccuracy().compute()
    with pytest.raises(ValueError, match="shape"):
        BoxAccuracy().load_counts(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="different"):
        BoxAccuracy(multi_contour=True).merge(BoxAccuracy(multi_contour=False))
