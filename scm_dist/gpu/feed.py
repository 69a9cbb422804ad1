"""Steps 5 and 6 of the GPU check: the loaders' feed rate (CPU and GPU decode) and
``scm-eval``'s images/s.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import replace
from typing import Any

from .common import BASE_CONFIG, Check

# -- 5. loader ----------------------------------------------------------------------------
DISTINCT_IMAGES = 256  # generated photo-like JPEGs; larger sets repeat them under new names


def step_loader(check: Check) -> dict[str, Any]:
    """The real WebDataset loader on ImageNet-like JPEGs (the loader benchmark's: real val
    sizes, photo-like, q90; only ``DISTINCT_IMAGES`` generated, the rest repeat them)."""
    from data_shards.convert import ConvertOptions
    from data_shards.schema import FORMAT_WEBDATASET
    from scm_dist.config import DataConfig
    from scm_dist.data.benchmark import convert_quietly, measure_loader, real_sizes, write_images

    sizes = check.sizes
    root = check.workdir / "loader"
    source_bytes = write_images(
        root / "folder", real_sizes(None, sizes.loader_images), classes=10, distinct=DISTINCT_IMAGES
    )
    options = ConvertOptions(formats=(FORMAT_WEBDATASET,), workers=max(1, min(8, os.cpu_count() or 1)))
    shards = convert_quietly(root / "folder", root / "shards", options)
    crop = 224 if not check.quick else 64
    resize = crop * 256 // 224
    cfg = DataConfig(
        train_dir=str(shards),
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
        measured = measure_loader(replace(cfg, decode=decode), check.device)
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
