"""Loader benchmark: train images/s at 224 px (decode + augment + collate + normalise) for
the WebDataset loader, the FFCV loader and the image-folder baseline, on the same JPEGs,
with the same number of workers, in one run; ratios to the baseline.

Input: ``--images`` JPEGs (quality 90) at the real sizes of the first ImageNet val images
(wsolevaluation metadata), textured so that they compress like photos (about 100 KB at
500 x 375); written as an image folder, converted by data_shards to both shard formats
(the shards carry the same JPEG bytes). Each loader runs one warm-up batch (FFCV compiles
its pipeline there), then two full timed epochs.

Remote (unless ``--no-remote``): the same WebDataset shards streamed from nginx and from
moto's S3 server, both started on 127.0.0.1 by the benchmark, every shard checked against
its sha256 as it streams; images/s beside local-disk WebDataset and their ratio to it.

Wired as ``python -m scm_dist.bench loaders --json``; ``run(args)`` returns the JSON dict.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from tqdm import tqdm

from data_shards.convert import ConvertOptions, convert_listing
from data_shards.images import encode_jpeg
from data_shards.reference_data import imagenet_val_metadata
from data_shards.sources.folder import list_folder
from scm_dist.config import DataConfig

from .build import build_train_loader

FORMATS: tuple[Literal["folder", "webdataset", "ffcv"], ...] = ("folder", "webdataset", "ffcv")
TIMED_EPOCHS = 2
# several WebDataset shards per worker, as in a real run (ImageNet at 128 MB over 256 readers:
# about 4 each); one big shard would make both workers read all of it
SHARD_MB = 8.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench loaders", description=__doc__)
    p.add_argument("--images", type=int, default=1024, help="JPEGs in the benchmark set")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="loader workers (processes; FFCV: threads), the same for every loader",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, default=224, help="crop size; resize is size * 256 / 224")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument(
        "--sizes",
        type=Path,
        default=None,
        help="wsol image_sizes.txt (default: the shipped ImageNet val one)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: temporary)")
    p.add_argument(
        "--gpu-img-s",
        type=float,
        default=1250.0,
        help="assumed training speed of one GPU (DeiT-S bf16, A100 class)",
    )
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--no-remote", action="store_true", help="skip WebDataset from nginx and from S3")
    return p


def real_sizes(path: Path | None, count: int) -> list[tuple[int, int]]:
    path = path or imagenet_val_metadata() / "image_sizes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"--sizes {path}: no such file; give a wsolevaluation image_sizes.txt")
    rows = [line.split(",") for line in path.read_text().splitlines()[:count]]
    sizes = [(int(row[1]), int(row[2])) for row in rows]
    return (sizes * (count // max(len(sizes), 1) + 1))[:count]


def photo_like(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour regions, edges and fine texture: JPEG sizes close to real photos."""
    field = cv2.resize(
        rng.random((6, 8, 3), dtype=np.float32) * 255, (width, height), interpolation=cv2.INTER_CUBIC
    )
    texture = cv2.GaussianBlur(rng.normal(0, 28, (height, width, 3)).astype(np.float32), (0, 0), 0.8)
    image = np.clip(field + texture, 0, 255).astype(np.uint8)
    for _ in range(6):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(10, width // 3)), int(rng.integers(10, height // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return image


def write_images(root: Path, sizes: list[tuple[int, int]], classes: int, distinct: int | None = None) -> int:
    """Photo-like JPEGs (q90) of ``sizes`` in ``classes`` folders under ``root``; with
    ``distinct``, only the first ``distinct`` are generated and the rest repeat them under
    new names. Returns their total bytes."""
    rng = np.random.default_rng(0)
    blobs: list[bytes] = []
    total = 0
    for i, (width, height) in enumerate(tqdm(sizes, desc="benchmark images", leave=False)):
        if distinct is None or i < distinct:
            blobs.append(encode_jpeg(photo_like(width, height, rng), 90))
        data = blobs[i % len(blobs)]
        folder = root / f"class{i % classes:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:06d}.jpg").write_bytes(data)
        total += len(data)
    return total


def convert_quietly(root: Path, out: Path, options: ConvertOptions) -> Path:
    """The image folder ``root`` converted by data_shards into ``out`` as the split
    ``train``, its progress bars silenced; the split's folder."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        convert_listing(list_folder(root, "train"), out, options, {})
    return out / "train"


def measure_loader(cfg: DataConfig, device: torch.device | str = "cpu") -> dict:
    """The loader's images/s with each batch made the model's input on ``device`` (the
    normalisation, or with ``data.decode: gpu`` the decode, counted; the device waited for)."""
    loader = build_train_loader(cfg, rank=0, world_size=1, seed=0)
    start = time.perf_counter()
    loader.set_epoch(0)
    next(iter(loader))[0].to_model(device)
    warmup = time.perf_counter() - start
    cpu_before = _cpu_seconds()
    images, start = 0, time.perf_counter()
    for epoch in range(1, 1 + TIMED_EPOCHS):
        loader.set_epoch(epoch)
        for batch, _ in loader:
            last = batch.to_model(device)
            images += len(batch)
    float(last.flatten()[0])  # the device has finished the last batch
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    return {
        "images": images,
        "seconds": round(seconds, 2),
        "images_per_s": round(images / seconds, 1),
        "images_per_s_per_worker": round(images / seconds / max(cfg.workers, 1), 1),
        "cpu_seconds": round(cpu, 2),
        "images_per_cpu_second": round(images / cpu, 1),
        "warmup_seconds": round(warmup, 2),
    }


def _remote_runs(shards: Path, base: dict) -> dict:
    """The WebDataset shards of ``shards`` (a split folder) from nginx and from S3."""
    from data_shards.remote_transfer import upload_splits

    from .remote_servers import create_bucket, nginx_serving, s3_environment, s3_server

    runs = {}
    with nginx_serving(shards.parent) as url:
        config = DataConfig(train_dir=f"{url}/{shards.name}", format="webdataset", **base)
        runs["webdataset_http_nginx"] = measure_loader(config)
    with s3_server() as endpoint, _environment(s3_environment(endpoint)):
        create_bucket(endpoint, "bench")
        upload_splits(shards, f"s3://bench/{shards.name}")
        config = DataConfig(train_dir=f"s3://bench/{shards.name}", format="webdataset", **base)
        runs["webdataset_s3_moto"] = measure_loader(config)
    return runs


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _cpu_seconds() -> float:
    """CPU time of this process (FFCV's threads, the main loop) and its finished children
    (the DataLoader workers, joined at the end of each epoch)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(args: list[str]) -> dict:
    """Run the benchmark; returns a JSON-ready dict."""
    opts = _parser().parse_args(args)
    logging.getLogger("data_shards").setLevel(logging.WARNING)
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="bench-loaders-"))
    try:
        root = work / "folder"
        source_bytes = write_images(root, real_sizes(opts.sizes, opts.images), opts.classes)
        shards = convert_quietly(root, work / "shards", ConvertOptions(workers=2, shard_size_mb=SHARD_MB))
        base = dict(
            resize_size=opts.size * 256 // 224,
            crop_size=opts.size,
            batch_size=opts.batch_size,
            workers=opts.workers,
            shuffle_buffer=1000,
            ffcv_order="random",
            ffcv_os_cache=True,
        )
        # remote runs before FFCV: forking DataLoader workers after FFCV has run makes numba's
        # thread pool print a warning on stdout, into the JSON
        runs: dict[str, dict] = {
            fmt: measure_loader(
                DataConfig(train_dir=str(root if fmt == "folder" else shards), format=fmt, **base)
            )
            for fmt in FORMATS
            if fmt != "ffcv"
        }
        remote = {} if opts.no_remote else _remote_runs(shards, base)
        runs["ffcv"] = measure_loader(DataConfig(train_dir=str(shards), format="ffcv", **base))
        runs.update(remote)
        baseline = runs["folder"]["images_per_s"]
        node_need = opts.gpus * opts.gpu_img_s
        return {
            "input": {
                "images": opts.images,
                "source_bytes_per_image": source_bytes // opts.images,
                "sizes": "real ImageNet val sizes (first N), generated photo-like JPEG q90",
            },
            "settings": {
                "crop": opts.size,
                "resize": base["resize_size"],
                "batch_size": opts.batch_size,
                "workers": opts.workers,
                "cpu_count": os.cpu_count(),
                "load_average_1min_after": round(os.getloadavg()[0], 2),
            },
            "runs": runs,
            "ratio_to_folder_baseline": {f: round(runs[f]["images_per_s"] / baseline, 2) for f in FORMATS},
            "remote_ratio_to_local_webdataset": {
                name: round(runs[name]["images_per_s"] / runs["webdataset"]["images_per_s"], 2)
                for name in remote
            },
            "deit_s_8gpu_node": {
                "assumed_images_per_s_per_gpu": opts.gpu_img_s,
                "gpus": opts.gpus,
                "node_images_per_s_needed": node_need,
                "loader_cores_needed": {
                    f: round(node_need / runs[f]["images_per_cpu_second"], 1) for f in FORMATS
                },
                "note": "cores = node need / images per CPU-second measured here (all CPU the "
                "loader used: workers, threads and the main loop); wall-clock "
                "images/s on a shared, loaded machine understate a quiet core",
            },
        }
    finally:
        if opts.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
