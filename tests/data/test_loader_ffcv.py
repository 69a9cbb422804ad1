"""FFCV loaders on a real .beton: exact-once eval with boxes, rank-aware orders, resume."""

import json
import shutil

import numpy as np
import pytest
import torch
from loader_fixtures import small_config

from scm_dist.data import ShardError, build_eval_loader, build_train_loader
from scm_dist.data.ffcv_loader import quasi_random_order
from scm_dist.data.transforms import eval_transform, rescale_boxes

# numba's dispatcher finalizer raises a harmless KeyError when FFCV's compiled code is freed
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _ids(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    out = []
    for images, labels in loader:
        assert images.pixels.shape == (4, 3, 48, 48) and images.pixels.dtype == torch.uint8
        assert images.to_model("cpu").dtype == torch.float32
        assert labels.dtype == torch.int64
        out.append(list(loader.last_ids))
    return out


def test_eval_covers_every_sample_once_with_boxes_in_the_eval_frame(split40):
    directory, samples = split40
    cfg = small_config(directory, "ffcv", eval_size=56, workers=1)
    loader = build_eval_loader(cfg, rank=1, world_size=2)
    assert loader.num_samples == 20 and loader.num_classes == 3
    ids = []
    for batch in loader:
        assert batch.images.shape == (len(batch), 3, 56, 56)
        for image, label, boxes, sid in zip(
            batch.images, batch.labels, batch.boxes, batch.sample_ids.tolist()
        ):
            info = samples[sid].info
            assert int(label) == info.label
            np.testing.assert_allclose(
                boxes.numpy(), rescale_boxes(np.array(info.boxes), info.width, info.height, 56), rtol=1e-6
            )
            red = image.float()
            # the same picture the WebDataset path makes (bilinear resize of the source)
            reference = eval_transform(samples[sid].image, 56).float()
            assert (red - reference).abs().mean() < 2.0
            ys, xs = torch.nonzero((red[0] > 200) & (red[1] < 60), as_tuple=True)
            x0, y0, x1, y1 = boxes[0].tolist()
            assert x0 - 1 <= xs.min() and xs.max() <= x1 + 1
            assert y0 - 1 <= ys.min() and ys.max() <= y1 + 1
        ids += batch.sample_ids.tolist()
        assert batch.keys == [str(i) for i in batch.sample_ids.tolist()]
    assert ids == list(range(20, 40))  # rank 1 of 2: the second half, each once


def test_random_order_epochs_seed_and_exact_resume(split40):
    directory, _ = split40
    cfg = small_config(directory, "ffcv", ffcv_order="random", workers=1)
    first = build_train_loader(cfg, rank=1, world_size=2, seed=2)
    assert first.steps_per_epoch == 5
    epoch0, epoch1 = _ids(first, 0), _ids(first, 1)
    assert epoch0 != epoch1 and len(set(sum(epoch1, []))) == 20
    mid = first.state_dict()
    mid["batches"] = 2  # as saved after two steps of epoch 1
    resumed = build_train_loader(cfg, rank=1, world_size=2, seed=2)
    resumed.load_state_dict(json.loads(json.dumps(mid)))
    resumed.set_epoch(1)
    assert _ids(resumed) == epoch1[2:]
    assert _ids(resumed, 0) == epoch0  # same seed, same order


def test_quasi_random_order_is_a_page_local_permutation():
    pages = np.repeat(np.arange(12), 5)  # 12 pages of 5 samples
    order = quasi_random_order(pages, window=3, rng=np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(60))
    # every run of 15 samples comes from exactly one window of 3 pages
    for start in range(0, 60, 15):
        assert len(set(pages[order[start : start + 15]])) == 3
    again = quasi_random_order(pages, 3, np.random.default_rng(0))
    other = quasi_random_order(pages, 3, np.random.default_rng(1))
    assert np.array_equal(order, again) and not np.array_equal(order, other)


def test_missing_or_truncated_beton_is_named(split10, tmp_path):
    directory = tmp_path / "bad"
    shutil.copytree(split10[0], directory)
    with open(directory / "val.beton", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ShardError, match=r"val\.beton has 100 bytes"):
        build_train_loader(small_config(directory, "ffcv"))
    (directory / "val.beton").unlink()
    with pytest.raises(ShardError, match=r"val\.beton is listed in the manifest but missing"):
        build_eval_loader(small_config(directory, "ffcv"))
