"""The synthetic WSOL set: deterministic, class = shape and hue band (not position), exact boxes,
and a centred box that does not localize well."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from data_shards.sources.synthetic import (
    _class_colour,
    centred_box_accuracy,
    centred_box_baseline,
    list_synthetic,
    render,
)

SIZE = 64


@pytest.fixture(scope="module")
def rendered():
    return [render(5, "train", i, 10, SIZE) for i in range(1500)]


def naive_centred_accuracy(boxes, sizes, fw, fh, threshold=0.5):
    hits = 0
    for gts, (w, h) in zip(boxes, sizes):
        x0, y0 = (w - fw * w) / 2, (h - fh * h) / 2
        x1, y1 = (w + fw * w) / 2 - 1, (h + fh * h) / 2 - 1
        best = 0.0
        for g in gts:
            iw = max(0.0, min(x1, g[2]) - max(x0, g[0]) + 1)
            ih = max(0.0, min(y1, g[3]) - max(y0, g[1]) + 1)
            union = (x1 - x0 + 1) * (y1 - y0 + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - iw * ih
            best = max(best, iw * ih / union)
        hits += best >= threshold
    return hits / len(boxes)


def test_centred_box_accuracy_hand_checked_and_against_a_naive_search():
    # a 100x100 image whose box is the centred half: the (0.5, 0.5) box hits it exactly
    acc, (fw, fh) = centred_box_accuracy(
        [np.array([[25, 25, 74, 74]])], [(100, 100)], threshold=0.99, steps=4
    )
    assert acc == 1.0 and (fw, fh) == (0.5, 0.5)
    # a corner box 10x10 in 100x100: IoU with any centred box is 0
    assert centred_box_accuracy([np.array([[0, 0, 9, 9]])], [(100, 100)], steps=10)[0] == 0.0
    rng = np.random.default_rng(0)
    boxes, sizes = [], []
    for _ in range(60):
        w, h = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        gts = []
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = rng.integers(0, w - 10), rng.integers(0, h - 10)
            gts.append([x0, y0, rng.integers(x0 + 5, w), rng.integers(y0 + 5, h)])
        boxes.append(np.array(gts, float))
        sizes.append((w, h))
    acc, (fw, fh) = centred_box_accuracy(boxes, sizes, steps=8)
    grid = [naive_centred_accuracy(boxes, sizes, a / 8, b / 8) for a in range(1, 9) for b in range(1, 9)]
    assert acc == pytest.approx(max(grid))
    assert naive_centred_accuracy(boxes, sizes, fw, fh) == pytest.approx(acc)


def test_render_is_deterministic_and_boxes_are_exact(rendered):
    image, label, box = render(5, "train", 3, 10, SIZE)
    again = render(5, "train", 3, 10, SIZE)
    assert np.array_equal(image, again[0]) and (label, box) == again[1:]
    assert not np.array_equal(image, render(5, "val", 3, 10, SIZE)[0])
    for image, _, (x0, y0, x1, y1) in rendered[:200]:
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert 0 <= x0 <= x1 <= SIZE - 1 and 0 <= y0 <= y1 <= SIZE - 1
        assert float(x0).is_integer() and float(y1).is_integer()


def test_objects_are_big_varied_and_sometimes_cut_by_the_border(rendered):
    boxes = np.array([b for _, _, b in rendered])
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    area = w * h / SIZE**2
    assert 0.05 < np.percentile(area, 5) and np.percentile(area, 95) < 0.6 and np.median(area) > 0.15
    aspect = w / h
    assert np.percentile(aspect, 10) < 0.8 and np.percentile(aspect, 90) > 1.25
    touching = (boxes[:, :2].min(axis=1) == 0) | (boxes[:, 2:].max(axis=1) == SIZE - 1)
    assert 0.2 < touching.mean() < 0.8


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    half = len(labels) // 2
    centroids = np.stack([features[:half][labels[:half] == c].mean(axis=0) for c in range(10)])
    predicted = np.argmin(((features[half:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    return float((predicted == labels[half:]).mean())


def test_class_is_the_shape_and_hue_band_not_the_position(rendered):
    labels = np.array([label for _, label, _ in rendered])
    counts = np.bincount(labels, minlength=10)
    assert counts.min() > 0.6 * counts.mean()
    position = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] for _, _, b in rendered])
    assert _nearest_centroid_accuracy(position, labels) < 0.2  # chance is 0.1
    rng = np.random.default_rng(0)
    for classes in (2, 5, 10):
        for label in range(classes):
            rgb = np.stack([_class_colour(rng, label, classes) for _ in range(50)])
            hsv = cv2.cvtColor(rgb.astype(np.uint8)[None], cv2.COLOR_RGB2HSV)[0].astype(int)
            band = 180 / classes
            assert (hsv[:, 0] >= np.floor(label * band)).all()
            assert (hsv[:, 0] <= np.ceil((label + 1) * band)).all()
            assert hsv[:, 1].min() >= 150 and np.ptp(hsv[:, 0]) > 0.3 * band


def test_a_centred_box_does_not_localize_the_set():
    listing = list_synthetic("val", 1000, image_size=SIZE, seed=1)
    boxes = [np.array(r.boxes) for r in listing.records]
    accuracy, _ = centred_box_accuracy(boxes, [(SIZE, SIZE)] * len(boxes))
    assert accuracy < 0.3


def test_centred_box_baseline_picks_a_shape_per_iou_threshold():
    # two 100x100 images: the centred half box, and a centred box 0.5 wide and 1.0 high
    boxes = [np.array([[25, 25, 74, 74]]), np.array([[25, 0, 74, 99]])]
    best = centred_box_baseline(boxes, [(100, 100)] * 2, thresholds=(0.5, 0.99), steps=4)
    # at IoU 0.5 the half box localizes both (IoU 1 and 0.5); at 0.99 no one shape does
    assert best[0.5] == (1.0, (0.5, 0.5))
    assert best[0.99][0] == 0.5
    for threshold, result in best.items():
        assert centred_box_accuracy(boxes, [(100, 100)] * 2, threshold=threshold, steps=4) == result
