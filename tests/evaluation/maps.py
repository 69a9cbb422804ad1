"""Random and structured score maps in [0, 1] for the identity tests."""

import cv2
import numpy as np


def normalise(values):
    values = values.astype(np.float32)
    values -= values.min()
    top = values.max()
    return values / top if top > 0 else values


def smooth_upsampled(rng, grid=14, size=224, interpolation=cv2.INTER_LINEAR):
    """Like a model's map: a few blobs and noise on a coarse grid, upsampled (bilinear, or
    bicubic as the wsol protocol: its overshoot is part of the normalised range)."""
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32)
    values = np.zeros((grid, grid), np.float32)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, grid, 2)
        sigma = rng.uniform(0.7, 3.5)
        values += rng.uniform(0.3, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    values += rng.uniform(0, 0.2, (grid, grid)).astype(np.float32)
    return normalise(cv2.resize(values, (size, size), interpolation=interpolation))


def noise(rng, size):
    return rng.random(size).astype(np.float32)


def quantised_noise(rng, size, levels):
    """Few distinct values: many plateaus, ties and equal-area components."""
    return (rng.integers(0, levels, size) / (levels - 1)).astype(np.float32)


def rings(rng, size=48):
    """Concentric rings with holes, nested islands inside holes."""
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
    radius = np.hypot(yy - cy, xx - cx)
    return normalise(np.cos(radius * rng.uniform(0.3, 1.2)) + 1)


def thin_lines(rng, size=40):
    values = np.zeros((size, size), np.float32)
    for _ in range(rng.integers(2, 7)):
        p0 = tuple(int(v) for v in rng.integers(0, size, 2))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(values, p0, p1, float(rng.uniform(0.2, 1)), 1)
    values[rng.integers(0, size), rng.integers(0, size)] = 1.0
    return values


def checkerboard(rng, size=32):
    cell = int(rng.integers(1, 4))
    yy, xx = np.mgrid[0:size, 0:size]
    board = ((yy // cell + xx // cell) % 2).astype(np.float32)
    return board * rng.uniform(0.3, 1, (size, size)).astype(np.float32) + 0.0


def border_blobs(rng, size=36):
    """Blobs centred on the image border and corners."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    values = np.zeros((size, size), np.float32)
    for cy, cx in [
        (0, rng.uniform(0, size)),
        (size - 1, rng.uniform(0, size)),
        (rng.uniform(0, size), size - 1),
        (size - 1, size - 1),
    ]:
        values += rng.uniform(0.4, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30)
    return normalise(values)


def tied_maxima(rng, size=30):
    """Several separate plateaus at the maximum, some of equal shape."""
    values = rng.uniform(0, 0.3, (size, size)).astype(np.float32)
    for _ in range(rng.integers(2, 5)):
        y, x = rng.integers(0, size - 3, 2)
        h, w = rng.integers(1, 4, 2)
        values[y : y + h, x : x + w] = 1.0
    return values


def structured_maps(rng):
    """One of each structured family, plus constants."""
    yield np.zeros((20, 20), np.float32)
    yield np.ones((20, 20), np.float32)
    yield np.full((17, 23), 0.5, np.float32)
    for family in (rings, thin_lines, checkerboard, border_blobs, tied_maxima):
        for _ in range(12):
            yield family(rng)


def random_gt(rng, shape, most=2):
    """1 to ``most`` random GT boxes (x0, y0, x1, y1) inside a map of ``shape``."""
    height, width = shape
    boxes = []
    for _ in range(rng.integers(1, most + 1)):
        x0, x1 = sorted(rng.integers(0, width, 2))
        y0, y1 = sorted(rng.integers(0, height, 2))
        boxes.append([x0, y0, x1, y1])
    return np.array(boxes)
