"""Transforms keep the object where the boxes say, against naive re-implementations."""

import numpy as np
import pytest
import torch
from loader_fixtures import object_image

from scm_dist.data.ffcv_loader import resized_window
from scm_dist.data.transforms import (
    CropParams,
    eval_transform,
    rescale_boxes,
    sample_crop,
    train_transform,
)


def _red_extent(chw: torch.Tensor) -> tuple[int, int, int, int]:
    """Bounding box (inclusive) of the clearly red pixels of a uint8 [3, H, W] image."""
    r, g = chw[0].int(), chw[1].int()
    ys, xs = torch.nonzero((r > 200) & (g < 60), as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@pytest.mark.parametrize("width,height,box", [(120, 80, (30, 20, 89, 59)), (64, 100, (0, 50, 40, 99))])
def test_eval_resize_moves_boxes_with_the_object(width, height, box):
    size = 56
    image = object_image(width, height, box, seed=1)
    out = eval_transform(image, size)
    assert out.shape == (3, size, size) and out.dtype == torch.uint8
    # a box given by its pixel corners covers [x0, x1 + 1) in continuous coordinates
    x0, y0, x1, y1 = rescale_boxes(np.array([[box[0], box[1], box[2] + 1, box[3] + 1]]), width, height, size)[
        0
    ]
    ex0, ey0, ex1, ey1 = _red_extent(out)
    assert abs(ex0 - x0) <= 1 and abs(ey0 - y0) <= 1
    assert abs(ex1 + 1 - min(x1, size)) <= 1.01 and abs(ey1 + 1 - min(y1, size)) <= 1.01


def test_rescale_boxes_scales_each_axis_and_clips():
    boxes = np.array([[10, 20, 50, 60], [-5, 0, 200, 100]], dtype=np.float32)
    out = rescale_boxes(boxes, width=100, height=80, size=40)
    np.testing.assert_allclose(out[0], [4, 10, 20, 30])
    np.testing.assert_allclose(out[1], [0, 0, 39, 39])  # clipped to [0, size - 1]


@pytest.mark.parametrize("flip", [False, True])
def test_train_crop_and_flip_match_a_naive_slice(flip):
    image = object_image(90, 70, (20, 10, 50, 40), seed=2)
    params = CropParams(top=5, left=9, flip=flip)
    out = train_transform(image, params, resize_size=64, crop_size=48)
    import cv2

    naive = cv2.resize(image, (64, 64), interpolation=cv2.INTER_LINEAR)[5:53, 9:57]
    if flip:
        naive = naive[:, ::-1]
    assert torch.equal(out, torch.from_numpy(naive.transpose(2, 0, 1).copy()))
    # the object moved as the box arithmetic says
    x0, y0, x1, y1 = rescale_boxes(np.array([[20, 10, 51, 41]]), 90, 70, 64)[0] - [9, 5, 9, 5]
    if flip:
        x0, x1 = 48 - x1, 48 - x0
    ex0, ey0, ex1, ey1 = _red_extent(out)
    assert max(abs(ex0 - x0), abs(ey0 - y0), abs(ex1 + 1 - x1), abs(ey1 + 1 - y1)) <= 1


def test_sample_crop_covers_every_offset_and_both_flips():
    rng = np.random.default_rng(0)
    drawn = [sample_crop(rng, 10, 8) for _ in range(400)]
    assert {p.top for p in drawn} == {0, 1, 2} and {p.left for p in drawn} == {0, 1, 2}
    assert {p.flip for p in drawn} == {False, True}
    with pytest.raises(ValueError, match="crop_size 9 is larger"):
        sample_crop(rng, 8, 9)


@pytest.mark.parametrize("top,left,flip", [(0, 0, False), (16, 3, True), (7, 16, False)])
def test_ffcv_window_equals_resize_crop_flip(top, left, flip):
    image = object_image(90, 70, (20, 10, 50, 40), seed=3)
    window = np.zeros((3, 48, 48), np.uint8)
    resized_window(image, window, top, left, 64, flip)  # Python here, numba in FFCV
    expected = train_transform(image, CropParams(top, left, flip), resize_size=64, crop_size=48).numpy()
    # OpenCV rounds to 8 bits with fixed-point weights: at most one level apart
    assert np.abs(window.astype(int) - expected).max() <= 1
    assert (window != expected).mean() < 0.25
