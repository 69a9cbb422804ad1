"""Steps 5 and 6 of the GPU check: the loaders' feed rate (CPU and GPU decode) and
``scm-eval``'s images/s.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .common import BASE_CONFIG, Check

# -- 5. loader ----------------------------------------------------------------------------
DISTINCT_IMAGES = 256  # generated photo-like JPEGs; larger sets repeat them under new names


def _imagenet_like_folder(root: Path, count: int, classes: int = 10) -> int:
    """``count`` JPEGs (q90) at the real sizes of the first ImageNet val images, photo-like
    (the loader benchmark's generator), in ``classes`` folders; returns their total bytes."""
    from data_shards.images import encode_jpeg
    from data_shards.reference_data import imagenet_val_metadata
    from scm_dist.data.benchmark import _photo_like, _real_sizes

    rng = np.random.default_rng(0)
    sizes_file = imagenet_val_metadata() / "image_sizes.txt"
    sizes = _real_sizes(sizes_file, min(count, DISTINCT_IMAGES))
    blobs = [encode_jpeg(_photo_like(width, height, rng), 90) for width, height in sizes]
    total = 0
    for i in range(count):
        folder = root / f"class{i % classes:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:06d}.jpg").write_bytes(blobs[i % len(blobs)])
        total += len(blobs[i % len(blobs)])
    return total


def step_loader(check: Check) -> dict[str, Any]:
    from data_shards.convert import ConvertOptions, convert_listing
    from data_shards.schema import FORMAT_WEBDATASET
    from data_shards.sources.folder import list_folder
    from scm_dist.config import DataConfig
    from scm_dist.data.benchmark import _measure

    sizes = check.sizes
    root = check.workdir / "loader"
    source_bytes = _imagenet_like_folder(root / "folder", sizes.loader_images)
    options = ConvertOptions(formats=(FORMAT_WEBDATASET,), workers=max(1, min(8, os.cpu_count() or 1)))
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        convert_listing(list_folder(root / "folder", "train"), root / "shards", options, {})
    crop = 224 if not check.quick else 64
    resize = crop * 256 // 224
    cfg = DataConfig(
        train_dir=str(root / "shards" / "train"),
        format="webdataset",
        resize_size=resize,
        crop_size=crop,
        batch_size=sizes.loader_batch,
        workers=sizes.loader_workers,
        shuffle_buffer=1000,
    )
    out: dict[str, Any] = {
        "images": sizes.loader_images,
        "distinct_images": min(sizes.loader_images, DISTINCT_IMAGES),
        "source_bytes_per_image": source_bytes // sizes.loader_images,
        "crop": crop,
        "batch": sizes.loader_batch,
    }
    train = check.results.get("train_images_per_s")
    if train:
        out["train_step_images_per_s"] = train
    # the same shards twice; with GPU decode the workers hand the JPEG bytes over undecoded
    for decode in ("cpu", "gpu"):
        measured = _measure(replace(cfg, decode=decode), check.device)
        out[f"{decode}_decode_webdataset"] = {
            "workers": sizes.loader_workers,
            "device": str(check.device),
            **measured,
        }
        if train:
            out[f"{decode}_decode_over_train"] = round(measured["images_per_s"] / train, 3)
    return out


# -- 6. eval ------------------------------------------------------------------------------
def step_eval(check: Check) -> dict[str, Any]:
    checkpoint = check.results.get("eval_checkpoint")
    if checkpoint is None:
        return {"skipped": "no checkpoint: the engine step did not finish its Accelerate run"}
    from scm_dist.app import evaluate
    from scm_dist.config import load_config

    cfg = load_config(BASE_CONFIG, check.results["eval_overrides"])
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        results = evaluate(cfg, checkpoint)
    seconds = time.perf_counter() - started
    images = check.sizes.engine_images[1]
    return {
        "images": images,
        "img_size": check.sizes.engine_img,
        "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 1),
        "note": "in-process, including the model load and the loader start",
        "metrics": {k: v for k, v in results.items() if isinstance(v, (int, float))},
    }
