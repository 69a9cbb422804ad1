"""The loaders' device-side input on real shards: uint8 batches that the train step
normalises on its device give today's normalised batch; GPU decoding (run here
on the CPU) gives the same batches within one grey level, with the same samples."""

import logging
import tarfile
import zlib

import numpy as np
import pytest
import torch
from loader_fixtures import imagenet_normalized, small_config, write_split

from data_shards.decode import decode_rgb
from scm_dist.data import ShardError, build_train_loader
from scm_dist.data.device_input import Jpegs, Pixels
from scm_dist.data.transforms import sample_crop, train_transform


def _jpegs_by_key(directory) -> dict[str, bytes]:
    out = {}
    for path in directory.glob("*.tar"):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    out[member.name.removesuffix(".jpg")] = tar.extractfile(member).read()
    return out


def _todays_batch(jpegs: dict[str, bytes], keys: list[str], seed: int, epoch: int) -> torch.Tensor:
    """What the loader computed before: decode, resize, crop and flip on the CPU, then
    ``(x / 255 - mean) / std`` in float32."""
    crops = []
    for key in keys:
        params = sample_crop(np.random.default_rng([seed, epoch, zlib.crc32(key.encode())]), 64, 48)
        crops.append(train_transform(decode_rgb(jpegs[key]), params, 64, 48))
    return imagenet_normalized(torch.stack(crops))


def _batches(cfg, epoch: int, seed: int = 3):
    loader = build_train_loader(cfg, rank=0, world_size=1, seed=seed)
    loader.set_epoch(epoch)
    return [(images, labels, list(loader.last_ids)) for images, labels in loader]


def test_uint8_batches_normalised_on_the_device_are_todays_batches(split40):
    """Crops and flips drawn per sample key as before; only the normalisation moved."""
    directory, _ = split40
    jpegs = _jpegs_by_key(directory)
    batches = _batches(small_config(directory, "webdataset", workers=2), epoch=1)
    for images, _, keys in batches:
        assert isinstance(images, Pixels) and images.pixels.dtype == torch.uint8
        torch.testing.assert_close(
            images.to_model("cpu"), _todays_batch(jpegs, keys, 3, 1), rtol=0, atol=1e-5
        )


def test_gpu_decode_gives_the_same_samples_within_one_grey_level(split40):
    directory, _ = split40
    cpu = _batches(small_config(directory, "webdataset", workers=2), epoch=0)
    gpu = _batches(small_config(directory, "webdataset", workers=2, decode="gpu"), epoch=0)
    assert [keys for _, _, keys in gpu] == [keys for _, _, keys in cpu]
    for (g, g_labels, _), (c, c_labels, _) in zip(gpu, cpu):
        assert isinstance(g, Jpegs) and torch.equal(g_labels, c_labels)
        got, want = g.to_model("cpu"), c.to_model("cpu")
        assert got.shape == want.shape == (4, 3, 48, 48)
        # torchvision's decode and bilinear resize vs OpenCV's fixed-point one
        torch.testing.assert_close(got, want, rtol=0, atol=1.01 / (255 * 0.225))


def test_gpu_decode_is_refused_for_other_formats(split40):
    directory, _ = split40
    with pytest.raises(
        ValueError, match="data.decode=gpu decodes WebDataset shards only.*set data.decode=cpu"
    ):
        build_train_loader(small_config(directory, "ffcv", decode="gpu"))


def test_gpu_decode_checks_headers_in_the_workers_and_names_undecodable_batches(tmp_path, caplog):
    directory = tmp_path / "pngs"
    write_split(directory, 12, shard_size=4, corrupt=frozenset({5}))  # PNGs, and one non-image
    strict = build_train_loader(small_config(directory, "webdataset", workers=0, decode="gpu"))
    with pytest.raises(ShardError, match=r"val_000\d\d in shard .*not a JPEG.*skip_corrupt"):
        list(strict)
    lenient = build_train_loader(
        small_config(directory, "webdataset", workers=0, decode="gpu", skip_corrupt=True)
    )
    with caplog.at_level(logging.WARNING), pytest.raises(ShardError, match="whole batch of 4 samples"):
        list(lenient)  # every sample is a PNG: nothing for the GPU decoder
    truncated = Jpegs([b"\xff\xd8\xff\xe0" + b"\x00" * 64], ["val_00001"], [], 64, 48)
    with pytest.raises(ShardError, match="could not decode the batch of samples val_00001 on cpu"):
        truncated.to_model("cpu")
