"""Shared parts of the sweeps: work arrays, pixels in value order on a padded grid,
and union-find over component ids with their boxes and the list of active roots."""

from __future__ import annotations

import numba as nb
import numpy as np

from .tables import _RING

# Indices are unsigned (numba checks every signed index for wraparound, which doubles
# the cost of the sweeps); offsets to the left or up wrap around modulo 2**64.
_U = np.uint64
_ONE = _U(1)


@nb.njit(cache=True)
def workspace(height: int, width: int) -> tuple[np.ndarray, ...]:
    """Work arrays of the sweeps of a height x width map, reused map after map (fresh
    ones cost page faults): the added flags and component ids of the padded grid; per
    component id (one per pixel at most, and the frame's) its parent, size, box
    (x0, y0, x1, y1 of its pixels), twice its area, cached IoU and GT cover, whether its
    box changed since, its position among the active roots and those roots; the
    sorted pixels."""
    padded = (height + 2) * (width + 2)
    capacity = height * width + 1
    return (
        np.empty(padded, np.uint8),
        np.empty(padded, np.uint32),
        np.empty(capacity, np.uint32),
        np.empty(capacity, np.int32),
        np.empty((capacity, 4), np.int32),
        np.empty(capacity, np.int64),
        np.empty(capacity),
        np.empty(capacity),
        np.empty(capacity, np.bool_),
        np.empty(capacity, np.uint32),
        np.empty(capacity, np.uint32),
        np.empty(height * width, np.uint64),
    )


@nb.njit(cache=True)
def _descending_order(image: np.ndarray, order: np.ndarray):
    """Pixels sorted by decreasing value (counting sort) into ``order``, each as
    ``y << 32 | x``, and ``starts[255 - v]``, where the pixels of value v begin there."""
    height, width = image.shape
    starts = np.zeros(257, np.uint64)
    for y in range(height):
        for x in range(width):
            starts[_U(256 - image[y, x])] += _ONE
    for key in range(1, 257):
        starts[key] += starts[key - 1]
    fill = starts.copy()
    for y in range(height):
        row = image[y]
        for x in range(width):
            key = _U(255 - row[x])
            order[fill[key]] = _U(y) << _U(32) | _U(x)
            fill[key] += _ONE
    return starts


@nb.njit(cache=True, inline="always")
def _pixel(packed: np.uint64, padded_width: np.uint64) -> tuple[np.uint64, int, int]:
    """Padded-grid index, x and y of a pixel of :func:`_descending_order`."""
    y = packed >> _U(32)
    x = packed & _U(0xFFFFFFFF)
    return (y + _ONE) * padded_width + x + _ONE, np.int64(x), np.int64(y)


@nb.njit(cache=True, inline="always")
def _ring_mask(added: np.ndarray, p: np.uint64, pw: np.uint64) -> np.uint64:
    """Bit k set when ring neighbour k of padded-grid pixel ``p`` is added."""
    return _U(
        added[p - pw]
        | (added[p - pw + _ONE] << 1)
        | (added[p + _ONE] << 2)
        | (added[p + pw + _ONE] << 3)
        | (added[p + pw] << 4)
        | (added[p + pw - _ONE] << 5)
        | (added[p - _ONE] << 6)
        | (added[p - pw - _ONE] << 7)
    )


@nb.njit(cache=True)
def _ring_offsets(padded_width: int) -> np.ndarray:
    """Padded-grid offsets of the ring neighbours (negative ones wrap around)."""
    offsets = np.empty(8, np.uint64)
    for k in range(8):
        offsets[k] = _U(_RING[k][0] * padded_width + _RING[k][1])
    return offsets


@nb.njit(cache=True, inline="always")
def _find(parent: np.ndarray, p: np.uint64) -> np.uint64:
    root = p
    while parent[root] != root:
        root = _U(parent[root])
    while parent[p] != root:
        nxt = _U(parent[p])
        parent[p] = root
        p = nxt
    return root


@nb.njit(cache=True, inline="always")
def _start(
    box: np.ndarray,
    dirty: np.ndarray,
    slot: np.ndarray,
    roots: np.ndarray,
    n_roots: np.uint64,
    c: np.uint64,
    x: int,
    y: int,
) -> np.uint64:
    """Component ``c`` starts as pixel (x, y) and joins the active roots; their new count."""
    box[c, 0] = x
    box[c, 1] = y
    box[c, 2] = x
    box[c, 3] = y
    dirty[c] = True
    slot[c] = n_roots
    roots[n_roots] = c
    return n_roots + _ONE


@nb.njit(cache=True, inline="always")
def _absorb(
    box: np.ndarray,
    dirty: np.ndarray,
    slot: np.ndarray,
    roots: np.ndarray,
    n_roots: np.uint64,
    root: np.uint64,
    other: np.uint64,
) -> np.uint64:
    """Root ``other`` merged into ``root``: join the boxes, drop ``other`` from the active
    roots; their new count."""
    box[root, 0] = min(box[root, 0], box[other, 0])
    box[root, 1] = min(box[root, 1], box[other, 1])
    box[root, 2] = max(box[root, 2], box[other, 2])
    box[root, 3] = max(box[root, 3], box[other, 3])
    dirty[root] = True
    return _drop(slot, roots, n_roots, other)


@nb.njit(cache=True, inline="always")
def _drop(slot: np.ndarray, roots: np.ndarray, n_roots: np.uint64, c: np.uint64) -> np.uint64:
    """Remove ``c`` from the active roots; their new count."""
    last = roots[n_roots - _ONE]
    roots[slot[c]] = last
    slot[last] = slot[c]
    return n_roots - _ONE
