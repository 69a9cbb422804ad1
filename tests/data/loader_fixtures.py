"""Tiny real splits for the loader tests: every image is a noisy background with one bright
red rectangle, the sample's box (so tests can see where the object went). Splits are
converted by data_shards itself; only damaged shards are written here directly, with
webdataset's TarWriter following data_shards.schema."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from data_shards.schema import (
    FORMAT_WEBDATASET,
    MANIFEST_NAME,
    MAX_BOXES,
    SCHEMA_VERSION,
    WDS_IMAGE_KEY,
    WDS_INFO_KEY,
    WDS_LABEL_KEY,
    Manifest,
    SampleInfo,
    ShardEntry,
    wds_shard_name,
)
from scm_dist.config import DataConfig

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
SIZES = ((64, 48), (80, 60), (50, 70), (96, 96))  # (width, height)
RED = (255, 0, 0)


@dataclass
class Sample:
    info: SampleInfo
    image: np.ndarray  # RGB uint8


def imagenet_normalized(images: torch.Tensor) -> torch.Tensor:
    """What the loaders computed on the CPU before the device-side input: uint8 ``[B, 3, H,
    W]`` to ``(x / 255 - mean) / std`` in float32, written out independently of the code."""
    return (images.float() / 255 - IMAGENET_MEAN) / IMAGENET_STD


def object_image(width: int, height: int, box: tuple[int, int, int, int], seed: int) -> np.ndarray:
    """Dark noisy background, the box (inclusive pixel corners) filled red."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    image[y0 : y1 + 1, x0 : x1 + 1] = RED
    return image


def make_samples(count: int, num_classes: int = 3, split: str = "val") -> list[Sample]:
    samples = []
    for i in range(count):
        width, height = SIZES[i % len(SIZES)]
        rng = np.random.default_rng(1000 + i)
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        x1 = int(rng.integers(x0 + 8, width))
        y1 = int(rng.integers(y0 + 8, height))
        label = i % num_classes
        key = f"{split}_{i:05d}"
        info = SampleInfo(
            key=key,
            sample_id=i,
            label=label,
            class_name=f"class{label}",
            width=width,
            height=height,
            boxes=((x0, y0, x1, y1),),
            image_width=width,
            image_height=height,
            source=f"class{label}/{key}.png",
        )
        samples.append(Sample(info, object_image(width, height, (x0, y0, x1, y1), i)))
    return samples


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def _entry(path: Path, fmt: str, samples: int) -> ShardEntry:
    data = path.read_bytes()
    return ShardEntry(path.name, fmt, samples, len(data), hashlib.sha256(data).hexdigest())


def write_webdataset(
    directory: Path, samples: list[Sample], shard_size: int, split: str, corrupt: frozenset[int] = frozenset()
) -> list[ShardEntry]:
    """Tar shards of ``shard_size`` samples (lossless PNG bytes in the ``.jpg`` member so
    pixel tests are exact; sample ids in ``corrupt`` get undecodable image bytes)."""
    import webdataset as wds

    entries = []
    for index, first in enumerate(range(0, len(samples), shard_size)):
        chunk = samples[first : first + shard_size]
        path = directory / wds_shard_name(split, index)
        with wds.TarWriter(str(path)) as sink:
            for s in chunk:
                image = b"not an image" if s.info.sample_id in corrupt else _png(s.image)
                sink.write(
                    {
                        "__key__": s.info.key,
                        WDS_IMAGE_KEY: image,
                        WDS_LABEL_KEY: str(s.info.label).encode(),
                        WDS_INFO_KEY: s.info.to_json(),
                    }
                )
        entries.append(_entry(path, FORMAT_WEBDATASET, len(chunk)))
    return entries


def write_split(
    directory: Path,
    count: int,
    shard_size: int = 7,
    split: str = "val",
    num_classes: int = 3,
    corrupt: frozenset[int] = frozenset(),
) -> list[Sample]:
    """A WebDataset-only split written directly (damaged samples cannot come out of
    data_shards, which skips them); returns the samples written."""
    directory.mkdir(parents=True, exist_ok=True)
    samples = make_samples(count, num_classes, split)
    entries = write_webdataset(directory, samples, shard_size, split, corrupt)
    manifest = Manifest(
        schema_version=SCHEMA_VERSION,
        source="synthetic",
        split=split,
        formats=(FORMAT_WEBDATASET,),
        classes=tuple(f"class{c}" for c in range(num_classes)),
        max_boxes=MAX_BOXES,
        shards=tuple(entries),
        total_samples=count,
        total_boxes=count,
        images_in=count,
        boxes_clipped=0,
        skipped=(),
    )
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict()))
    return samples


def small_config(directory: Path, fmt: str, **overrides) -> DataConfig:
    """Small images and batches for fast tests."""
    values = dict(
        train_dir=str(directory),
        val_dir=str(directory),
        format=fmt,
        resize_size=64,
        crop_size=48,
        eval_size=56,
        batch_size=4,
        eval_batch_size=5,
        workers=2,
        shuffle_buffer=8,
    )
    values.update(overrides)
    return DataConfig(**values)


def write_folder(directory: Path, samples: list[Sample]) -> None:
    """The same samples as an image folder ``root/<class>/<key>.jpg``."""
    for s in samples:
        path = directory / s.info.class_name / f"{s.info.key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))


def convert_split(
    out: Path, count: int, shard_size_mb: float, split: str = "val"
) -> tuple[Path, list[Sample]]:
    """The samples as an image folder (lossless-ish JPEG q100 4:4:4) with a boxes CSV,
    converted to both formats by data_shards itself. Returns the split directory and the
    samples indexed by their ``sample_id``, their info as the shards' json states it."""
    import tarfile

    from data_shards.convert import ConvertOptions, convert_listing
    from data_shards.schema import decode_sample_json
    from data_shards.sources.folder import list_folder

    source = out / "source"
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        100,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    ]
    by_source = {}
    rows = ["path,x0,y0,x1,y1"]
    for s in make_samples(count, split=split):
        rel = f"{s.info.class_name}/{s.info.key}.jpg"
        (source / s.info.class_name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(source / rel), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR), params)
        rows += [f"{rel},{','.join(str(v) for v in box)}" for box in s.info.boxes]
        by_source[rel] = s
    (out / "boxes.csv").write_text("\n".join(rows) + "\n")
    listing = list_folder(source, split, out / "boxes.csv")
    convert_listing(listing, out / "shards", ConvertOptions(shard_size_mb=shard_size_mb), {})
    directory = out / "shards" / split
    infos = []
    for tar in sorted(directory.glob("*.tar")):
        with tarfile.open(tar) as f:
            infos += [
                decode_sample_json(f.extractfile(m).read())
                for m in f.getmembers()
                if m.name.endswith(".json")
            ]
    samples = []
    for info in sorted(infos, key=lambda i: i.sample_id):
        mine = by_source[info.source]
        assert (info.label, info.boxes, info.width, info.height) == (
            mine.info.label,
            tuple(tuple(float(v) for v in b) for b in mine.info.boxes),
            mine.info.width,
            mine.info.height,
        )
        samples.append(Sample(info, mine.image))
    assert [s.info.sample_id for s in samples] == list(range(count))
    return directory, samples
