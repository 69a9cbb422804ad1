"""WebDataset loaders on real tar shards: exact-once eval, train order, resume, bad input."""

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from loader_fixtures import small_config, write_split

from data_shards.schema import MANIFEST_NAME
from scm_dist.data import ShardError, build_eval_loader, build_train_loader
from scm_dist.data.transforms import rescale_boxes


def _epoch(loader, epoch=None):
    """(ids, images) of every batch of one epoch."""
    if epoch is not None:
        loader.set_epoch(epoch)
    out = []
    for images, labels in loader:
        model_input = images.to_model("cpu")
        assert model_input.dtype == torch.float32 and labels.dtype == torch.int64
        assert model_input.shape == (len(images), 3, loader._cfg.crop_size, loader._cfg.crop_size)
        out.append((list(loader.last_ids), model_input))
    return out


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_eval_union_over_ranks_is_every_sample_once(split10, split40, world):
    for directory, samples in (split10, split40):
        cfg = small_config(directory, "webdataset", workers=2)
        keys, ids = [], []
        for rank in range(world):
            loader = build_eval_loader(cfg, rank=rank, world_size=world)
            got = [k for batch in loader for k in batch.keys]
            assert len(got) == loader.num_samples
            keys += got
            ids += [i for batch in build_eval_loader(cfg, rank, world) for i in batch.sample_ids.tolist()]
        assert sorted(keys) == sorted(s.info.key for s in samples)  # no duplicate, none missing
        assert sorted(ids) == list(range(len(samples)))


def test_eval_batches_carry_labels_and_boxes_aligned_with_the_image(split40):
    directory, samples = split40
    cfg = small_config(directory, "webdataset", eval_size=56)
    by_key = {s.info.key: s.info for s in samples}
    seen = 0
    for batch in build_eval_loader(cfg, rank=1, world_size=2):
        assert batch.images.shape == (len(batch), 3, 56, 56) and batch.images.dtype == torch.uint8
        for image, label, boxes, key in zip(batch.images, batch.labels, batch.boxes, batch.keys):
            info = by_key[key]
            assert int(label) == info.label
            expected = rescale_boxes(np.array(info.boxes), info.width, info.height, 56)
            np.testing.assert_allclose(boxes.numpy(), expected, rtol=1e-6)
            # the red object sits inside the box
            pixels = image.float()
            red = (pixels[0] > 200) & (pixels[1] < 60)
            ys, xs = torch.nonzero(red, as_tuple=True)
            x0, y0, x1, y1 = boxes[0].tolist()
            assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1
            assert ys.min() >= y0 - 1 and ys.max() <= y1 + 1
            seen += 1
    assert seen == 20


def test_train_ranks_are_disjoint_with_equal_steps(split40):
    directory, _ = split40
    cfg = small_config(directory, "webdataset")
    per_rank = []
    for rank in range(3):
        loader = build_train_loader(cfg, rank=rank, world_size=3, seed=5)
        assert loader.steps_per_epoch == 40 // (3 * 4) and loader.num_classes == 3
        batches = _epoch(loader, 2)
        assert len(batches) == loader.steps_per_epoch
        assert all(len(ids) == 4 for ids, _ in batches)
        per_rank.append({k for ids, _ in batches for k in ids})
    assert sum(map(len, per_rank)) == len(set.union(*per_rank)) == 36


def test_epochs_differ_and_the_seed_fixes_the_order(split40):
    directory, _ = split40
    cfg = small_config(directory, "webdataset", workers=0)
    first = build_train_loader(cfg, rank=0, world_size=1, seed=3)
    order0 = [ids for ids, _ in _epoch(first, 0)]
    order1 = [ids for ids, _ in _epoch(first, 1)]
    again = build_train_loader(cfg, rank=0, world_size=1, seed=3)
    replay = _epoch(again, 0)
    other = build_train_loader(cfg, rank=0, world_size=1, seed=4)
    assert order0 != order1
    assert [ids for ids, _ in replay] == order0
    assert [ids for ids, _ in _epoch(other, 0)] != order0
    # same seed: same crops and flips too
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(_epoch(first, 0), replay))


@pytest.mark.parametrize(
    "resampled,decode",
    [(False, "cpu"), (True, "cpu"), (False, "gpu")],
    ids=["split", "resampled", "gpu-decode"],
)
def test_resume_continues_exactly_where_it_stopped(split40, resampled, decode):
    directory, _ = split40
    cfg = small_config(
        directory,
        "webdataset",
        decode=decode,
        workers=3,
        batch_size=2,
        resampled=resampled,
        samples_per_epoch=30 if resampled else 0,
    )
    full = build_train_loader(cfg, rank=1, world_size=2, seed=11)
    assert full.steps_per_epoch == (30 if resampled else 40) // 4
    reference = _epoch(full, 1)
    for stop in (1, 4, 5):  # inside the first round, a round boundary, mid round
        run = build_train_loader(cfg, rank=1, world_size=2, seed=11)
        run.set_epoch(1)
        for step, _ in enumerate(run, start=1):
            if step == stop:
                break
        state = json.loads(json.dumps(run.state_dict()))
        resumed = build_train_loader(cfg, rank=1, world_size=2, seed=11)
        resumed.load_state_dict(state)
        resumed.set_epoch(1)  # the engine re-announces the epoch: must not restart it
        rest = _epoch(resumed)
        assert [ids for ids, _ in rest] == [ids for ids, _ in reference[stop:]]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(rest, reference[stop:]))
    # after a full epoch the next iteration is the next epoch
    assert [ids for ids, _ in _epoch(full)] == [
        ids for ids, _ in _epoch(build_train_loader(cfg, rank=1, world_size=2, seed=11), 2)
    ]


def test_resume_with_another_world_size_warns(split40, caplog):
    directory, _ = split40
    cfg = small_config(directory, "webdataset", workers=0)
    state = build_train_loader(cfg, rank=0, world_size=2, seed=0).state_dict()
    state["batches"] = 4
    loader = build_train_loader(cfg, rank=0, world_size=1, seed=0)
    with caplog.at_level(logging.WARNING):
        loader.load_state_dict(state)
    assert "not exactly" in caplog.text
    assert len(_epoch(loader)) == loader.steps_per_epoch - 8


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_and_truncated_shards_are_named(split10, tmp_path):
    directory, _ = split10
    missing = _copy(directory, tmp_path / "missing")
    (missing / "val-000002.tar").unlink()
    with pytest.raises(ShardError, match=r"val-000002\.tar.*missing"):
        build_train_loader(small_config(missing, "webdataset"))
    truncated = _copy(directory, tmp_path / "truncated")
    with open(truncated / "val-000001.tar", "r+b") as f:
        f.truncate(1500)
    with pytest.raises(ShardError, match=r"val-000001\.tar has 1500 bytes"):
        build_eval_loader(small_config(truncated, "webdataset"))


@pytest.mark.parametrize("claimed,message", [(2, "more samples than the 2"), (4, "ended after 3 samples")])
def test_manifest_count_mismatch_names_the_shard(split10, tmp_path, claimed, message):
    directory = _copy(split10[0], tmp_path / "mismatch")
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest["shards"][1]["samples"] = claimed
    manifest["totals"]["samples"] += claimed - 3
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    loader = build_eval_loader(small_config(directory, "webdataset", workers=0))
    with pytest.raises(ShardError, match=rf"val-000001\.tar.*{message}"):
        list(loader)


def test_corrupt_samples_stop_or_are_skipped_and_counted(tmp_path, caplog):
    directory = tmp_path / "corrupt"
    write_split(directory, 12, shard_size=4, corrupt=frozenset({5}))
    strict = build_train_loader(small_config(directory, "webdataset", workers=0))
    with pytest.raises(ShardError, match=r"val_00005 in shard .*val-000001\.tar.*skip_corrupt"):
        list(strict)
    lenient = build_train_loader(small_config(directory, "webdataset", workers=2, skip_corrupt=True))
    with caplog.at_level(logging.WARNING):
        batches = _epoch(lenient, 0)
    ids = [k for b, _ in batches for k in b]
    assert len(ids) == 11 and "val_00005" not in ids and lenient.skipped_corrupt == 1
    assert "skipped 1 undecodable" in caplog.text
    with pytest.raises(ShardError, match="val_00005.*not a decodable image"):
        list(build_eval_loader(small_config(directory, "webdataset")))
