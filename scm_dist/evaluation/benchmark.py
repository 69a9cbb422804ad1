"""Benchmark: the full WSOL metric, fast exact box search against the literal loop.

Both run on the same model-like outputs in one run (logits, 14x14 localization maps
upsampled to 224x224, 100 CAM thresholds, IoU 30/50/70, top-1/top-5, both protocols);
the literal loop thresholds and runs ``cv2.findContours`` at every CAM threshold of every
needed map (the GT class's and the top-5 predicted classes'). The counters of the two
must be identical. Wired as ``python -m scm_dist.bench eval --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from .contours import literal_map_ious
from .localization import LocalizationEvaluator, image_counts, needed_maps
from .scoremaps import scoremap
from .search import correct_at

IMAGENET_VAL_IMAGES = 50_000


def literal_search(
    settings: Any,
    protocol: str,
    maps: list[np.ndarray],
    gt_boxes: list[np.ndarray],
    multi_contour: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The literal protocol: one findContours per CAM threshold of every map, then the
    hits (as :func:`scm_dist.evaluation.localization.fast_search`)."""
    largest, every = [], []
    for image_maps, boxes, multi in zip(maps, gt_boxes, multi_contour):
        for class_map, all_contours in zip(image_maps, multi):
            scores = scoremap(class_map, settings.image_size, protocol)
            ious = literal_map_ious(scores, settings.taus, boxes)
            largest.append(correct_at(ious[0], settings.iou_thresholds))
            every.append(correct_at(ious[1], settings.iou_thresholds) * all_contours)
    return np.stack(largest), np.stack(every)


def model_like_batch(
    rng: np.random.Generator, images: int, classes: int, grid: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Random but realistic outputs: per class a few Gaussian blobs plus noise on the
    grid (as attention x class map), logits, labels and 1-2 GT boxes per image."""
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32)
    cams = rng.uniform(0, 0.2, (images, classes, grid, grid)).astype(np.float32)
    for _ in range(2):
        centre = rng.uniform(0, grid, (images, classes, 2, 1, 1)).astype(np.float32)
        sigma = rng.uniform(0.7, 3.5, (images, classes, 1, 1)).astype(np.float32)
        weight = rng.uniform(0.3, 1.0, (images, classes, 1, 1)).astype(np.float32)
        distance = (yy - centre[:, :, 0]) ** 2 + (xx - centre[:, :, 1]) ** 2
        cams += weight * np.exp(-distance / (2 * sigma**2))
    logits = cams.mean(axis=(2, 3)) + rng.normal(0, 0.05, (images, classes)).astype(np.float32)
    labels = rng.integers(0, classes, images)
    boxes = []
    for _ in range(images):
        corners = np.sort(rng.integers(0, size, (rng.integers(1, 3), 2, 2)), axis=1)
        boxes.append(corners.transpose(0, 2, 1).reshape(-1, 4)[:, [0, 2, 1, 3]])
    return logits, cams, labels, boxes


def _timed(function) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run(args: list[str]) -> dict[str, Any]:
    """Run the benchmark; returns the numbers as a JSON-able dict."""
    parser = argparse.ArgumentParser(prog="scm_dist.bench eval", description=__doc__)
    parser.add_argument("--images", type=int, default=300, help="images for the fast path")
    parser.add_argument(
        "--literal-images",
        type=int,
        default=40,
        help="first images also run by the literal loop (it is slow)",
    )
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--grid", type=int, default=14, help="model map size (14 = 224/16)")
    parser.add_argument("--size", type=int, default=224, help="eval frame")
    parser.add_argument("--workers", type=int, default=2, help="processes for the pool run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="(accepted; output is JSON)")
    options = parser.parse_args(args)
    if options.literal_images > options.images:
        parser.error("--literal-images must not exceed --images")

    rng = np.random.default_rng(options.seed)
    logits, cams, labels, boxes = model_like_batch(
        rng, options.images, options.classes, options.grid, options.size
    )
    image_size = (options.size, options.size)
    warm = LocalizationEvaluator(image_size)
    warm.update(logits[:2], cams[:2], labels[:2], boxes[:2])  # compile / load numba

    fast = LocalizationEvaluator(image_size)
    _, fast_wall, fast_cpu = _timed(lambda: fast.update(logits, cams, labels, boxes))

    head = slice(0, options.literal_images)
    needed, classes, ranked = needed_maps(logits[head], cams[head], labels[head], 5)
    literal, literal_wall, literal_cpu = _timed(
        lambda: image_counts(
            fast.settings, needed, classes, ranked, labels[head], boxes[head], literal_search
        )
    )
    check = LocalizationEvaluator(image_size)
    check.update(logits[head], cams[head], labels[head], boxes[head])
    identical = bool(np.array_equal(literal, check.counts()))

    pooled = LocalizationEvaluator(image_size, workers=options.workers)
    try:
        pooled.update(logits[:8], cams[:8], labels[:8], boxes[:8])  # start the workers
        pooled.reset()
        _, pool_wall, _ = _timed(lambda: pooled.update(logits, cams, labels, boxes))
    finally:
        pooled.close()
    identical &= bool(np.array_equal(pooled.counts(), fast.counts()))

    fast_rate = options.images / fast_wall
    literal_rate = options.literal_images / literal_wall
    pool_rate = options.images / pool_wall
    maps_per_image = float(np.mean([len(c) for c in classes]))
    return {
        "benchmark": "eval",
        "setup": {
            "images": options.images,
            "literal_images": options.literal_images,
            "classes": options.classes,
            "map": f"{options.grid}x{options.grid} -> {options.size}x{options.size}",
            "cam_thresholds": len(fast.settings.taus),
            "iou_thresholds": list(fast.settings.iou_thresholds),
            "topk": [1, 5],
            "protocols": ["wsol", "scm-release"],
            "maps_per_image": maps_per_image,
        },
        "identical_counts": identical,
        "fast_images_per_s": round(fast_rate, 2),
        "literal_images_per_s": round(literal_rate, 2),
        "speedup_one_core": round(fast_rate / literal_rate, 2),
        "speedup_one_core_cpu_time": round(
            (literal_cpu / options.literal_images) / (fast_cpu / options.images), 2
        ),
        f"pool_{options.workers}_images_per_s": round(pool_rate, 2),
        f"pool_{options.workers}_speedup_vs_literal": round(pool_rate / literal_rate, 2),
        "projected_50k_val_s": {
            "literal_one_core": round(IMAGENET_VAL_IMAGES / literal_rate, 1),
            "fast_one_core": round(IMAGENET_VAL_IMAGES / fast_rate, 1),
            f"fast_pool_{options.workers}": round(IMAGENET_VAL_IMAGES / pool_rate, 1),
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
