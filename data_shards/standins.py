"""Stand-in ImageNet val trees for scale checks and benchmarks: real file names, sizes, labels
and boxes from the wsolevaluation metadata, with generated pixels.

``tiny=True`` writes one small JPEG per distinct aspect (about 1/16 of the real size) and hard
links it under every name: the metadata keeps the REAL sizes and boxes, which the shards must
carry whatever the stored image's size. ``tiny=False`` writes real-size JPEGs (for timing).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data_shards.images import encode_jpeg
from data_shards.sources.imagenet import read_wsol_metadata


def _pixels(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, 3).astype(np.float32)
    img = (
        base
        + 40 * np.sin(xx[..., None] / rng.uniform(5, 40, 3))
        + 40 * np.cos(yy[..., None] / rng.uniform(5, 40, 3))
    )
    return np.clip(img, 0, 255).astype(np.uint8)


def build_val_standins(metadata_dir: Path, root: Path, tiny: bool = True, limit: int | None = None) -> int:
    """Write ``root/val/<ILSVRC2012_val_N>.JPEG`` for the images of a wsol metadata folder;
    returns the count."""
    annotations = read_wsol_metadata(metadata_dir)
    names = sorted(annotations)[:limit] if limit else sorted(annotations)
    (root / "val").mkdir(parents=True, exist_ok=True)
    shared: dict[tuple[int, int], Path] = {}
    for i, stem in enumerate(names):
        size = annotations[stem].size
        assert size is not None  # read_wsol_metadata gives every image its size
        width, height = size
        target = root / "val" / f"{stem}.JPEG"
        if tiny:
            small = (max(1, round(width / 16)), max(1, round(height / 16)))
            if small not in shared:
                shared[small] = root / f"standin_{small[0]}x{small[1]}.jpg"
                shared[small].write_bytes(encode_jpeg(_pixels(*small, seed=len(shared)), 90))
            if not target.exists():
                os.link(shared[small], target)
        else:
            target.write_bytes(encode_jpeg(_pixels(width, height, seed=i), 90))
    return len(names)
