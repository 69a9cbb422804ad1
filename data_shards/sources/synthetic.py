"""The built-in synthetic WSOL set: one shape per image on a cluttered, textured background.

The class is the object's SHAPE (10 shapes) together with its HUE: each class owns one band
of the hue circle (180 / classes wide) and its objects take a random saturated colour in it,
so every object patch carries class evidence a small ViT learns in minutes on a CPU, while
distractor blobs and lines of any hue compete with it. Position, size, aspect ratio and
rotation are random and independent of the class. Backgrounds mix a smooth colour
field, oriented stripes and noise; distractors are line segments, scribbles and amoeba-like
blobs, none of them a class shape. Objects cover about 10-45% of the image (box area), and
some are cut by the image border. The ground-truth box is the exact bounding box of the
object's visible pixels, ``[x0, y0, x1, y1]`` inclusive pixel indices.

:func:`centred_box_baseline` gives the best accuracy that one fixed centred box reaches on a
set, the "no localization" baseline a model must beat (the demo reports the same measure).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import cv2
import numpy as np

from data_shards.boxes import best_box_iou
from data_shards.images import encode_jpeg
from data_shards.processes import worker_pool
from data_shards.records import SourceListing, SourceRecord
from data_shards.sources.common import LayoutError

GENERATOR_VERSION = 2  # bump when the pixels change: re-runs then re-synthesize
SHAPES = (
    "ellipse",
    "rectangle",
    "triangle",
    "star",
    "cross",
    "ring",
    "hexagon",
    "crescent",
    "arrow",
    "hourglass",
)
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_AREA_RANGE = (0.1, 0.45)  # object box area / image area
_LOG_ASPECT = 0.6  # aspect ratio in [e^-0.6, e^0.6] = [0.55, 1.8]
_MAX_ROTATION = np.deg2rad(25.0)
_CUT_FRACTION = 0.2  # the box may lie up to this fraction of its size outside the image


def _circle(n: int = 40, radius: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


def _regular(n: int, phase: float = -np.pi / 2) -> np.ndarray:
    t = phase + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star() -> np.ndarray:
    t = -np.pi / 2 + np.linspace(0, 2 * np.pi, 10, endpoint=False)
    r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


_A = 0.34  # half width of the cross arms
# Each shape: (polygons to fill, polygons to cut out), in unit coordinates [-1, 1]^2.
_SHAPE_POLYGONS: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {
    "ellipse": ([_circle()], []),
    "rectangle": ([np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)], []),
    "triangle": ([np.array([[0, -1], [1, 1], [-1, 1]], float)], []),
    "star": ([_star()], []),
    "cross": (
        [
            np.array(
                [
                    [-_A, -1],
                    [_A, -1],
                    [_A, -_A],
                    [1, -_A],
                    [1, _A],
                    [_A, _A],
                    [_A, 1],
                    [-_A, 1],
                    [-_A, _A],
                    [-1, _A],
                    [-1, -_A],
                    [-_A, -_A],
                ],
                float,
            )
        ],
        [],
    ),
    "ring": ([_circle()], [_circle(radius=0.55)]),
    "hexagon": ([_regular(6, 0.0)], []),
    "crescent": ([_circle()], [_circle(radius=0.8, cx=0.45, cy=-0.1)]),
    "arrow": (
        [np.array([[-1, -0.3], [0.1, -0.3], [0.1, -1], [1, 0], [0.1, 1], [0.1, 0.3], [-1, 0.3]], float)],
        [],
    ),
    "hourglass": ([np.array([[-1, -1], [1, -1], [0.15, 0], [1, 1], [-1, 1], [-0.15, 0]], float)], []),
}


def _smooth_field(rng: np.random.Generator, size: int, grid: int, channels: int) -> np.ndarray:
    small = rng.random((grid, grid, channels), dtype=np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR).reshape(size, size, channels)


def _random_colour(rng: np.random.Generator, saturated: bool) -> np.ndarray:
    hsv = np.array(
        [
            [
                [
                    rng.integers(0, 180),
                    rng.integers(150, 256) if saturated else rng.integers(20, 110),
                    rng.integers(90, 256),
                ]
            ]
        ],
        np.uint8,
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _class_colour(rng: np.random.Generator, label: int, num_classes: int) -> np.ndarray:
    """A saturated colour whose hue lies in the class's own band of the hue circle."""
    band = 180 / num_classes
    hsv = np.array(
        [[[int((label + rng.uniform(0.15, 0.85)) * band), rng.integers(190, 256), rng.integers(150, 256)]]],
        np.uint8,
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    field = _smooth_field(rng, size, 4, 3)
    image = 60 + 140 * field
    yy, xx = _grid(size)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 14)
    phase = xx * np.float32(np.cos(angle) * 2 * np.pi / period) + yy * np.float32(
        np.sin(angle) * 2 * np.pi / period
    )
    image += (
        np.float32(rng.uniform(10, 35)) * np.sin(phase)
        + rng.standard_normal((size, size), dtype=np.float32) * 10
    )[..., None]
    return image


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _add_distractors(rng: np.random.Generator, image: np.ndarray) -> None:
    size = image.shape[0]
    blob_field = _smooth_field(rng, size, 7, 1)[..., 0]
    blobs = blob_field > np.quantile(blob_field, rng.uniform(0.85, 0.95))
    image[blobs] = 0.4 * image[blobs] + 0.6 * _random_colour(rng, saturated=rng.random() < 0.5)
    for _ in range(rng.integers(2, 6)):
        pts = rng.integers(-size // 4, size + size // 4, (2, 2))
        cv2.line(
            image,
            tuple(map(int, pts[0])),
            tuple(map(int, pts[1])),
            _random_colour(rng, rng.random() < 0.5).tolist(),
            int(rng.integers(1, 3)),
        )
    for _ in range(rng.integers(1, 3)):
        steps = rng.normal(0, size / 10, (6, 2)).cumsum(axis=0) + rng.uniform(0, size, 2)
        cv2.polylines(
            image,
            [steps.astype(np.int32)],
            False,
            _random_colour(rng, rng.random() < 0.5).tolist(),
            int(rng.integers(1, 4)),
        )


def _object_mask(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
    area = rng.uniform(*_AREA_RANGE) * size * size
    aspect = np.exp(rng.uniform(-_LOG_ASPECT, _LOG_ASPECT))
    w, h = min(np.sqrt(area * aspect), 0.95 * size), min(np.sqrt(area / aspect), 0.95 * size)
    cx = rng.uniform(w / 2 - _CUT_FRACTION * w, size - w / 2 + _CUT_FRACTION * w)
    cy = rng.uniform(h / 2 - _CUT_FRACTION * h, size - h / 2 + _CUT_FRACTION * h)
    theta = rng.uniform(-_MAX_ROTATION, _MAX_ROTATION)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    fills, cuts = _SHAPE_POLYGONS[shape]
    mask = np.zeros((size, size), np.uint8)
    for polys, value in ((fills, 1), (cuts, 0)):
        for poly in polys:
            pts = (poly * [w / 2, h / 2]) @ rot.T + [cx, cy]
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], value, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def render(
    seed: int, split: str, index: int, num_classes: int, size: int
) -> tuple[np.ndarray, int, tuple[float, float, float, float]]:
    """Image ``index`` of ``split``: (RGB uint8 array, class, exact box). Same arguments, same pixels."""
    rng = np.random.default_rng([seed, _SPLIT_CODES.get(split, 3), index])
    label = int(rng.integers(num_classes))
    while True:
        mask = _object_mask(rng, SHAPES[label], size)
        if mask.sum() >= 0.04 * size * size:
            break
    image = _background(rng, size)
    _add_distractors(rng, image)
    colour = _class_colour(rng, label, num_classes)
    image[mask] = colour + rng.standard_normal((int(mask.sum()), 1), dtype=np.float32) * 8
    outline = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    image[outline & mask] *= 0.45
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    return np.clip(image, 0, 255).astype(np.uint8), label, box


def _render_record(job: tuple[int, str, int, int, int, int]) -> SourceRecord:
    seed, split, index, num_classes, size, quality = job
    image, label, box = render(seed, split, index, num_classes, size)
    key = f"synth_{split}_{index:07d}"
    return SourceRecord(
        key=key,
        source=f"synthetic/{split}/{index}",
        label=label,
        class_name=SHAPES[label],
        boxes=(box,),
        data=encode_jpeg(image, quality),
    )


def list_synthetic(
    split: str,
    count: int,
    num_classes: int = 10,
    image_size: int = 128,
    seed: int = 0,
    jpeg_quality: int = 90,
    workers: int = 1,
) -> SourceListing:
    """Render ``count`` images of ``split`` as in-memory JPEG records."""
    if not 2 <= num_classes <= len(SHAPES):
        raise LayoutError(
            f"--classes must be between 2 and {len(SHAPES)} (one class per shape), got {num_classes}"
        )
    if image_size < 32:
        raise LayoutError(f"--image-size must be at least 32 pixels, got {image_size}")
    jobs = [(seed, split, i, num_classes, image_size, jpeg_quality) for i in range(count)]
    if workers > 1:
        with worker_pool(workers) as pool:
            records = pool.map(_render_record, jobs, chunksize=64)
    else:
        records = [_render_record(j) for j in jobs]
    return SourceListing("synthetic", split, SHAPES[:num_classes], tuple(records))


def centred_boxes(size: tuple[int, int], steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The candidate centred boxes of a ``(width, height)`` image: fractions ``(fw, fh)`` of its
    sides on a ``steps x steps`` grid in (0, 1] -> (boxes [steps^2, 4] (inclusive corners,
    fractional), fractions [steps^2, 2])."""
    width, height = size
    grid = np.arange(1, steps + 1) / steps
    fractions = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    cw, ch = fractions[:, 0] * width, fractions[:, 1] * height
    boxes = np.stack([(width - cw) / 2, (height - ch) / 2, (width + cw) / 2 - 1, (height + ch) / 2 - 1], 1)
    return boxes, fractions


def centred_box_baseline(
    boxes: Iterable[np.ndarray],
    sizes: Iterable[tuple[int, int]],
    thresholds: Iterable[float] = (0.5,),
    steps: int = 20,
) -> dict[float, tuple[float, tuple[float, float]]]:
    """The "no localization" baseline: per IoU threshold, the best fraction of images that one
    centred box shape localizes, and that shape.

    The centred box covers fractions ``(fw, fh)`` of each image's width and height (see
    :func:`centred_boxes`); an image counts when the box reaches the threshold with any of
    its GT boxes ("+1" pixel IoU, :mod:`data_shards.boxes`). Each threshold picks its own
    shape, as MaxBoxAccV2 picks a CAM threshold per IoU threshold. Returns
    ``{threshold: (accuracy, (fw, fh))}``.
    """
    boxes, sizes = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes], list(sizes)
    if not boxes:
        raise ValueError("the centred-box baseline needs at least one image")
    ious = []
    for gt, size in zip(boxes, sizes):
        candidates, fractions = centred_boxes(size, steps)
        ious.append(best_box_iou(candidates, gt))
    table = np.stack(ious)  # [images, candidates]
    result = {}
    for threshold in thresholds:
        accuracy = (table >= threshold).mean(axis=0)
        best = int(np.argmax(accuracy))  # first best shape in grid order
        result[threshold] = (float(accuracy[best]), (float(fractions[best, 0]), float(fractions[best, 1])))
    return result


def centred_box_accuracy(
    boxes: Iterable[np.ndarray], sizes: Iterable[tuple[int, int]], threshold: float = 0.5, steps: int = 20
) -> tuple[float, tuple[float, float]]:
    """:func:`centred_box_baseline` at one IoU threshold: (accuracy, (fw, fh))."""
    return centred_box_baseline(boxes, sizes, (threshold,), steps)[threshold]


def describe_baseline(listing: SourceListing, steps: int = 20) -> dict[str, float]:
    """Centred-box baseline of a rendered listing, for the README and the manifest."""
    boxes = [np.asarray(r.boxes) for r in listing.records]
    data = listing.records[0].data
    image = None if data is None else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise LayoutError("describe_baseline needs a rendered listing (in-memory JPEG records)")
    size = image.shape[0]
    accuracy, (fw, fh) = centred_box_accuracy(boxes, [(size, size)] * len(boxes), steps=steps)
    return {
        "centred_box_accuracy_iou50": accuracy,
        "centred_box_width_fraction": fw,
        "centred_box_height_fraction": fh,
    }


def resolve_count(value: int | None, default: int) -> int:
    """Sample count from the command line (None means the default); rejects negatives."""
    count = default if value is None else value
    if count < 0:
        raise LayoutError(f"sample counts must be >= 0, got {count}")
    return count
