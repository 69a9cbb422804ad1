"""Conversion benchmark: images/s with 1 and 2 workers for each format, bytes per image, on one input.

Input: the first ``--images`` ImageNet val images as stand-ins at their REAL sizes (generated
JPEGs, quality 90) with their real labels and boxes. Baseline: decoding every source image once
in one process (the least any conversion that checks its images must do). ``--scale`` adds the
full 50,000-image val annotation set with tiny stand-ins in both formats.

Wired as ``python -m scm_dist.bench shards --json``; ``run(args)`` returns the JSON dict.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from data_shards.convert import ConvertOptions, convert_listing
from data_shards.reference_data import imagenet_val_folder_txt, imagenet_val_metadata
from data_shards.schema import FORMAT_FFCV, FORMAT_WEBDATASET, FORMATS
from data_shards.sources.imagenet import list_imagenet
from data_shards.standins import build_val_standins


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench shards", description=__doc__)
    p.add_argument("--images", type=int, default=1000, help="real-size stand-in images to convert")
    p.add_argument(
        "--metadata",
        type=Path,
        default=None,
        help="wsolevaluation ILSVRC metadata folder (default: the one shipped in data_shards/reference)",
    )
    p.add_argument(
        "--classes", type=Path, default=None, help="wnid list (val_folder_new.txt; default: the shipped one)"
    )
    p.add_argument(
        "--scale", action="store_true", help="also convert all 50,000 val annotations (tiny images)"
    )
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="accepted for the bench runner; output is JSON anyway")
    return p


def _timed_convert(listing, out: Path, formats: tuple[str, ...], workers: int) -> dict:
    options = ConvertOptions(formats=formats, workers=workers, shard_size_mb=256.0)
    start = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        manifest = convert_listing(listing, out, options, {})
    seconds = time.perf_counter() - start
    result = {
        "workers": workers,
        "formats": list(formats),
        "seconds": round(seconds, 2),
        "images_per_s": round(manifest.total_samples / seconds, 1),
    }
    for fmt in formats:
        total = sum(s.bytes for s in manifest.shards_of(fmt))
        result[f"{fmt}_bytes_per_image"] = round(total / manifest.total_samples)
    shutil.rmtree(out)
    return result


def _decode_baseline(listing) -> dict:
    start = time.perf_counter()
    for record in listing.records:
        with Image.open(record.path) as image:
            image.load()
    seconds = time.perf_counter() - start
    return {
        "what": "PIL decode of every source image, 1 process",
        "seconds": round(seconds, 2),
        "images_per_s": round(len(listing.records) / seconds, 1),
    }


def run(args: list[str]) -> dict:
    """Run the benchmark; returns a JSON-ready dict."""
    opts = _parser().parse_args(args)
    opts.metadata = opts.metadata or imagenet_val_metadata()
    opts.classes = opts.classes or imagenet_val_folder_txt()
    logging.getLogger("data_shards").setLevel(logging.WARNING)
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        root = work / "imagenet"
        build_val_standins(opts.metadata, root, tiny=False, limit=opts.images)
        listing = _limited_listing(root, opts)
        source_bytes = sum(Path(r.path).stat().st_size for r in listing.records)
        result = {
            "input": {
                "images": len(listing.records),
                "kind": "real ImageNet val sizes, generated JPEG q90",
                "source_bytes_per_image": round(source_bytes / len(listing.records)),
            },
            "baseline_decode_only": _decode_baseline(listing),
            "runs": [
                _timed_convert(listing, work / "out", formats, workers)
                for formats in ((FORMAT_WEBDATASET,), (FORMAT_FFCV,), FORMATS)
                for workers in (1, 2)
            ],
            "cpu_count": os.cpu_count(),
        }
        if opts.scale:
            result["scale_50k_tiny_standins"] = _scale(opts, work)
        return result
    finally:
        if opts.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _limited_listing(root: Path, opts: argparse.Namespace):
    """The stand-in images as a listing, annotations restricted to the images present."""
    present = {p.stem for p in (root / "val").iterdir()}
    meta = root / "meta"
    meta.mkdir(exist_ok=True)
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        lines = (opts.metadata / name).read_text().splitlines()
        (meta / name).write_text(
            "".join(f"{line}\n" for line in lines if Path(line.split(",")[0]).stem in present)
        )
    return list_imagenet(root, "val", meta, "wsol", opts.classes)


def _scale(opts: argparse.Namespace, work: Path) -> dict:
    root = work / "imagenet50k"
    start = time.perf_counter()
    count = build_val_standins(opts.metadata, root, tiny=True)
    listing = list_imagenet(root, "val", opts.metadata, "wsol", opts.classes)
    prepared = time.perf_counter() - start
    run_result = _timed_convert(listing, work / "out50k", FORMATS, 2)
    return {
        "images": count,
        "boxes": sum(len(r.boxes) for r in listing.records),
        "standin_build_and_listing_seconds": round(prepared, 1),
        **run_result,
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(sys.argv[1:]), indent=1))
