"""LocalizationEvaluator: both protocols against a direct implementation, hand cases."""

import json

import numpy as np
import pytest
import torch
from literal_protocol import literal_boxes, literal_ious, multiple_iou, release_scoremap, wsol_scoremap

from scm_dist.evaluation import LocalizationEvaluator, format_table
from scm_dist.evaluation.quantize import cam_thresholds

SIZE = (48, 64)


def direct_metrics(logits, cams, labels, boxes, ious=(30, 50, 70), ks=(1, 5)):
    """Every count, image by image, straight from the protocol text: wsol on the GT map
    resized bicubically, scm-release on the top-k maps resized bilinearly, its Top-k Loc
    through the entry whose class is the label (the release's count())."""
    taus = cam_thresholds(0.01)
    n = len(labels)
    ranked = [sorted(range(logits.shape[1]), key=lambda c: (-logits[b, c], c)) for b in range(n)]

    def hits(b, c, multi, scoremap=wsol_scoremap):
        iou = literal_ious(scoremap(cams[b, c], SIZE), taus, boxes[b], multi)
        return np.stack([iou >= t / 100 for t in ious])

    gt_known = sum(hits(b, labels[b], False) for b in range(n))
    gt_known_all = sum(hits(b, labels[b], True) for b in range(n))
    loc, release, release_loc, cls = {}, {}, {}, {}
    for k in ks:
        cls[k] = sum(labels[b] in ranked[b][:k] for b in range(n))
        loc[k] = sum(hits(b, labels[b], False) * (labels[b] in ranked[b][:k]) for b in range(n))
        release[k] = sum(
            np.any([hits(b, c, False, release_scoremap) for c in ranked[b][:k]], axis=0) for b in range(n)
        )
        release_loc[k] = sum(
            hits(b, c, False, release_scoremap) for b in range(n) for c in ranked[b][:k] if c == labels[b]
        )
    return taus, gt_known, gt_known_all, loc, release, release_loc, cls


def random_batch(seed, n=7, k=6):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)).astype(np.float32)
    cams = rng.normal(size=(n, k, 6, 8)).astype(np.float32)
    cams[:, :, 2:4, 3:6] += 2.0 * rng.random((n, k, 1, 1)).astype(np.float32)
    labels = rng.integers(0, k, n)
    boxes = []
    for _ in range(n):
        x0, y0 = rng.integers(0, 30, 2)
        boxes.append(np.array([[x0, y0, x0 + rng.integers(8, 30), y0 + rng.integers(8, 17)]]))
    return logits, cams, labels, boxes


def test_every_metric_equals_the_direct_implementation():
    logits, cams, labels, boxes = random_batch(0)
    evaluator = LocalizationEvaluator(image_size=SIZE)
    evaluator.update(torch.from_numpy(logits), torch.from_numpy(cams), torch.from_numpy(labels), boxes)
    view = evaluator.layout.views(evaluator.counts())
    taus, gt_known, gt_known_all, loc, release, release_loc, cls = direct_metrics(logits, cams, labels, boxes)
    np.testing.assert_array_equal(view["wsol_gt_known"], gt_known)
    np.testing.assert_array_equal(view["wsol_gt_known_all"], gt_known_all)
    for i, k in enumerate((1, 5)):
        assert view["cls"][i] == cls[k]
        np.testing.assert_array_equal(view["wsol_loc"][i], loc[k])
        np.testing.assert_array_equal(view["release_gt_known"][i], release[k])
        np.testing.assert_array_equal(view["release_loc"][i], release_loc[k])
    results = evaluator.compute()
    n = len(labels)
    best = int(np.argmax(gt_known[1]))
    wsol = results["protocols"]["wsol"]
    assert wsol["MaxBoxAcc"] == {"acc": gt_known[1].max() * 100.0 / n, "cam_threshold": taus[best], "iou": 50}
    assert wsol["Top-1 Loc"]["acc"] == loc[1][1, best] * 100.0 / n
    assert wsol["MaxBoxAccV2"]["acc"] == np.mean([row.max() * 100.0 / n for row in gt_known_all])
    release_50 = results["protocols"]["scm-release"]["GT-known Top-5"]
    assert release_50["acc"] == release[5][1].max() * 100.0 / n
    assert release_50["cam_threshold"] == taus[int(np.argmax(release[5][1]))]
    json.dumps(results)
    table = format_table(results)
    assert "MaxBoxAccV2" in table and "scm-release" in table and f"images: {n}" in table


def test_scm_release_counts_predicted_classes_maps():
    """The GT class (0) is ranked second; the top class's (1) map finds the object."""
    class_maps = np.zeros((1, 3, 6, 8), np.float32)
    class_maps[0, 1, 1:4, 1:4] = 1.0  # predicted class: on the object
    class_maps[0, 0, 4:6, 6:8] = 1.0  # GT class: elsewhere
    logits = np.array([[1.0, 2.0, 0.0]], np.float32)
    object_box = literal_boxes(release_scoremap(class_maps[0, 1], SIZE), [0.5], False)[0]
    evaluator = LocalizationEvaluator(image_size=SIZE, topk=(1, 2))
    evaluator.update(logits, class_maps, np.array([0]), [object_box])
    results = evaluator.compute()["protocols"]
    assert results["wsol"]["GT-known Loc"]["acc"] == 0.0
    assert results["wsol"]["Top-2 Loc"]["acc"] == 0.0
    release = results["scm-release"]
    assert release["GT-known Top-1"]["acc"] == 100.0
    assert release["Top-1 Loc"]["acc"] == 0.0  # the label is not the top-1 class
    assert release["Top-2 Loc"]["acc"] == 0.0  # label in top-2, but its own map misses
    assert release["Top-1 Cls"] == 0.0 and release["Top-2 Cls"] == 100.0


def test_release_top5_loc_counts_only_the_labels_own_map():
    """Issue 17's minimal case: 5 classes, logits [5, 4, 3, 2, 1], label 1; class 0's map
    covers the GT box, every other map is elsewhere. The release's count() gives Top-5
    Loc 0 (only entry j with pred_labels[j] == gt_label counts, with its own map) while
    GT-known Top-5 (any predicted map) is 100."""
    class_maps = np.zeros((1, 5, 6, 8), np.float32)
    class_maps[0, 0, 1:4, 1:4] = 1.0  # class 0: on the object
    class_maps[0, 1:, 4:6, 5:8] = 1.0  # every other class, the label's included: elsewhere
    logits = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)
    gt_box = literal_boxes(release_scoremap(class_maps[0, 0], SIZE), [0.5], False)[0]
    evaluator = LocalizationEvaluator(image_size=SIZE, topk=(1, 5))
    evaluator.update(logits, class_maps, np.array([1]), [gt_box])
    release = evaluator.compute()["protocols"]["scm-release"]
    assert release["GT-known Top-5"]["acc"] == 100.0
    assert release["Top-5 Cls"] == 100.0
    assert release["Top-5 Loc"]["acc"] == 0.0
    # the label's own map on the object: now Top-5 Loc counts it
    class_maps[0, 1] = class_maps[0, 0]
    evaluator.reset()
    evaluator.update(logits, class_maps, np.array([1]), [gt_box])
    release = evaluator.compute()["protocols"]["scm-release"]
    assert release["Top-5 Loc"]["acc"] == 100.0 and release["Top-1 Loc"]["acc"] == 0.0


def test_wsol_resizes_bicubically_and_scm_release_bilinearly():
    """A map whose largest-contour boxes from the bicubic and the bilinear resize overlap
    by IoU < 0.5 at some CAM threshold: each protocol scores the box its reference code
    draws there."""
    rng = np.random.default_rng(5)
    taus = cam_thresholds(0.01)
    for _ in range(200):
        cam = rng.normal(size=(1, 1, 6, 8)).astype(np.float32)
        bicubic = np.concatenate(literal_boxes(wsol_scoremap(cam[0, 0], SIZE), taus, False))
        bilinear = np.concatenate(literal_boxes(release_scoremap(cam[0, 0], SIZE), taus, False))
        overlap = np.array([multiple_iou(a[None], b[None])[0, 0] for a, b in zip(bicubic, bilinear)])
        differ = np.flatnonzero(overlap < 0.5)
        if len(differ):
            break
    tau = differ[0]
    results = {}
    for name, boxes in (("bicubic", bicubic), ("bilinear", bilinear)):
        evaluator = LocalizationEvaluator(image_size=SIZE, topk=(1,))
        evaluator.update(np.zeros((1, 1), np.float32), cam, np.array([0]), [boxes[tau][None]])
        view = evaluator.layout.views(evaluator.counts())
        results[name] = (view["wsol_gt_known"][1, tau], view["release_gt_known"][0, 1, tau])
    assert results["bicubic"] == (1, 0)  # the GT box is the bicubic map's own box
    assert results["bilinear"] == (0, 1)


def test_merge_and_counts_are_split_invariant():
    logits, cams, labels, boxes = random_batch(1, n=6)
    whole = LocalizationEvaluator(image_size=SIZE)
    whole.update(logits, cams, labels, boxes)
    merged = LocalizationEvaluator(image_size=SIZE)
    for part in (slice(0, 1), slice(1, 5), slice(5, 6)):
        other = LocalizationEvaluator(image_size=SIZE)
        other.update(logits[part], cams[part], labels[part], boxes[part])
        merged.merge(other)
    assert json.dumps(merged.compute()) == json.dumps(whole.compute())
    reloaded = LocalizationEvaluator(image_size=SIZE)
    reloaded.load_counts(whole.counts())
    assert reloaded.compute() == whole.compute()


def test_bad_input_is_refused_with_a_clear_error():
    logits, cams, labels, boxes = random_batch(2, n=2)
    evaluator = LocalizationEvaluator(image_size=SIZE)
    nan_cams = cams.copy()
    nan_cams[1, labels[1], 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"cams\[1\] has a non-finite"):
        evaluator.update(logits, nan_cams, labels, boxes)
    with pytest.raises(ValueError, match="labels must lie in"):
        evaluator.update(logits, cams, np.array([0, 6]), boxes)
    with pytest.raises(ValueError, match="to match logits"):
        evaluator.update(logits, cams[:, :3], labels, boxes)
    with pytest.raises(ValueError, match="x1 < x0"):
        evaluator.update(logits, cams, labels, [boxes[0], np.array([[5, 5, 1, 9]])])
    with pytest.raises(ValueError, match="must include 50"):
        LocalizationEvaluator(iou_thresholds=(30, 70))
    with pytest.raises(ValueError, match="no images"):
        evaluator.compute()
    with pytest.raises(ValueError, match="different settings"):
        evaluator.merge(LocalizationEvaluator(image_size=(10, 10)))
