"""Device-side input against today's CPU path (same JPEGs, same crops), run on the CPU."""

import numpy as np
import pytest
import torch
from loader_fixtures import imagenet_normalized

from data_shards.images import encode_jpeg
from scm_dist.data import device_input
from scm_dist.data.benchmark import photo_like
from scm_dist.data.transforms import decode_jpeg, eval_transform, sample_crop, train_transform

SIZES = [(500, 375), (333, 500), (120, 90), (640, 480)]  # down- and upscaled to 256


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    jpegs = [encode_jpeg(photo_like(w, h, rng), 90) for w, h in SIZES]
    params = [sample_crop(rng, 256, 224) for _ in jpegs]
    params[0] = type(params[0])(params[0].top, params[0].left, True)  # at least one of each flip
    params[1] = type(params[1])(params[1].top, params[1].left, False)
    return jpegs, params


def _todays_batch(jpegs, params):
    return torch.stack([train_transform(decode_jpeg(j), p, 256, 224) for j, p in zip(jpegs, params)])


def test_uint8_path_normalised_on_the_device_equals_the_formula(batch):
    jpegs, params = batch
    crops = _todays_batch(jpegs, params)  # what the loader hands over on this path
    moved = device_input.to_device(crops, "cpu")
    assert moved.dtype == torch.uint8
    out = device_input.normalize(moved)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, imagenet_normalized(crops), rtol=0, atol=1e-5)


def test_gpu_decode_path_on_cpu_matches_todays_batch(batch):
    """torchvision decode + torch bilinear resize vs OpenCV: within one grey level."""
    jpegs, params = batch
    today = _todays_batch(jpegs, params)
    decoded = device_input.decode_jpegs(jpegs, "cpu")
    assert [tuple(d.shape) for d in decoded] == [(3, h, w) for w, h in SIZES]
    crops = device_input.train_crops(decoded, params, 256, 224)
    assert crops.dtype == torch.uint8 and crops.shape == today.shape
    assert (crops.int() - today.int()).abs().max() <= 1
    torch.testing.assert_close(
        device_input.normalize(crops), imagenet_normalized(today), rtol=0, atol=1.01 / (255 * 0.224)
    )


def test_eval_resize_matches_todays_eval_transform(batch):
    jpegs, _ = batch
    today = torch.stack([eval_transform(decode_jpeg(j), 224) for j in jpegs])
    resized = device_input.eval_resize(device_input.decode_jpegs(jpegs, "cpu"), 224)
    assert resized.shape == today.shape
    assert (resized.int() - today.int()).abs().max() <= 1


def test_normalize_in_bf16_and_bad_input():
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    out = device_input.normalize(images, dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), imagenet_normalized(images), rtol=1e-2, atol=2e-2)
    with pytest.raises(ValueError, match="uint8 batch"):
        device_input.normalize(images.float())
    with pytest.raises(ValueError, match="crop parameters"):
        device_input.train_crops([images[0]], [], 8, 4)
