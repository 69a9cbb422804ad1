"""PNG panels and threshold curves are written and show the boxes."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from scm_dist.evaluation import LocalizationEvaluator, localization_box, save_panel, save_threshold_curves


def colour_pixels(path, bgr):
    picture = cv2.imread(str(path))
    close = np.abs(picture.astype(int) - np.array(bgr)).max(axis=2) < 40
    return int(close.sum())


def test_panel_shows_gt_in_green_and_prediction_in_red(tmp_path):
    class_map = np.zeros((7, 7), np.float32)
    class_map[2:5, 1:4] = 1.0
    scores, box = localization_box(class_map, (112, 112), 0.5)
    assert scores.shape == (112, 112) and box[2] > box[0] and box[3] > box[1]
    image = np.full((112, 112, 3), 128, np.uint8)
    plain = save_panel(
        tmp_path / "plain.png", image, class_map, class_map, scores, np.zeros((0, 4)), np.zeros((0, 4))
    )
    path = save_panel(
        tmp_path / "panels" / "0.png",
        image,
        attention=np.random.rand(7, 7),
        class_map=class_map,
        localization_map=scores,
        gt_boxes=np.array([[10, 10, 60, 50]]),
        predicted_box=box,
        title="img 0",
    )
    assert path.exists()
    assert colour_pixels(path, (0, 255, 0)) > 100 + colour_pixels(plain, (0, 255, 0))
    assert colour_pixels(path, (0, 0, 255)) > 100 + colour_pixels(plain, (0, 0, 255))
    with pytest.raises(ValueError, match="uint8"):
        save_panel(tmp_path / "bad.png", image[..., 0], class_map, class_map, scores, np.zeros((0, 4)), box)


def test_threshold_curves_png(tmp_path):
    rng = np.random.default_rng(0)
    evaluator = LocalizationEvaluator(image_size=(32, 32))
    evaluator.update(
        rng.normal(size=(3, 5)),
        rng.normal(size=(3, 5, 4, 4)),
        np.array([0, 1, 2]),
        [np.array([[2, 2, 20, 20]])] * 3,
    )
    curves = evaluator.curves()
    assert set(curves) >= {"wsol GT-known (largest contour)", "scm-release GT-known Top-5"}
    path = save_threshold_curves(tmp_path / "curves.png", evaluator.settings.taus, curves)
    height, width = cv2.imread(str(path)).shape[:2]
    assert width > 3 * height
    with pytest.raises(ValueError, match="CAM thresholds"):
        save_threshold_curves(tmp_path / "x.png", evaluator.settings.taus[:5], curves)


@pytest.mark.parametrize("key", ["../../escaped", "/tmp/abs_escaped", "a/b", "..", ""])
def test_picture_names_from_shard_keys_stay_inside_the_pictures_folder(tmp_path, key):
    """A key is data: scm-eval's panels land directly in ``pictures/`` whatever the key says."""
    from scm_dist.evaluation.run import _draw_pictures

    evaluator = LocalizationEvaluator(image_size=(16, 16))
    evaluator.update(np.zeros((1, 6)), np.random.rand(1, 6, 4, 4), np.array([0]), [np.array([[2, 2, 9, 9]])])
    cam = np.random.rand(4, 4).astype(np.float32)
    item = dict(key=key, image=np.zeros((16, 16, 3), np.uint8), attention=cam, class_map=cam, cam=cam)
    item.update(boxes=np.array([[2, 2, 9, 9]]), label=0, pred=0)
    out = tmp_path / "a" / "b" / "run"
    _draw_pictures([item], 0.5, evaluator, out, 16)  # CAM threshold 0.5
    written = [p for p in tmp_path.rglob("*.png") if p.name != "threshold_curves.png"]
    assert len(written) == 1 and written[0].parent == out / "pictures", written
    assert not Path("/tmp/abs_escaped.png").exists()
