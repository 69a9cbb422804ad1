"""The hole sweep: the boxes of the background 4-connected components that do not reach
the frame (hole borders), in one union-find sweep in increasing value order, at the
thresholds where they could change the result."""

from __future__ import annotations

import numba as nb
import numpy as np

from data_shards.boxes import iou_with_gt

from .tables import _N_REPS4, _REPS4
from .union_find import _ONE, _U, _absorb, _drop, _find, _pixel, _ring_mask, _ring_offsets, _start

_FRAME = _U(0)  # component id of the padding frame and every background pixel reaching it


@nb.njit(cache=True)
def _holes_wanted(
    has_holes: np.ndarray, best: np.ndarray, cover: np.ndarray, deltas: np.ndarray
) -> np.ndarray:
    """Thresholds where a hole box could change the result: it could beat the best
    component box (its IoU is at most ``cover``), and, given ``deltas``, it could lift
    the best IoU from below some delta to it."""
    wanted = has_holes & (cover > best)
    if deltas.size:
        for t in range(wanted.size):
            if wanted[t]:
                lifts = False
                for delta in deltas:
                    lifts |= best[t] < delta <= cover[t]
                wanted[t] = lifts
    return wanted


@nb.njit(cache=True)
def hole_sweep(
    image: np.ndarray,
    starts: np.ndarray,
    thresholds: np.ndarray,
    gt: np.ndarray,
    wanted: np.ndarray,
    work: tuple,
) -> np.ndarray:
    """Best IoU of any hole border's protocol box with ``gt`` at the ``wanted``
    thresholds (-1: none, or not wanted).

    The holes of ``image > T`` are the background (``<= T``) 4-connected components
    that do not reach the frame. One union-find sweep in increasing order (the reverse
    of :func:`_descending_order`) over the background, with the padding frame as one
    component, has them all; it stops after the last wanted threshold. The pixels are
    sorted into ``work`` (a :func:`workspace`) by :func:`_descending_order`.
    """
    height, width = image.shape
    pw = _U(width + 2)
    n = (height + 2) * (width + 2)
    offsets = _ring_offsets(width + 2)
    # added: background pixels so far, and the frame
    added, label, parent, size, box, _, cached_iou, _, dirty, slot, roots, order = work
    added[:] = 0
    for q in range(n):
        y, x = divmod(q, width + 2)
        if y == 0 or x == 0 or y == height + 1 or x == width + 1:
            added[q] = 1
            label[q] = _FRAME
    parent[_FRAME] = _FRAME
    size[_FRAME] = n
    n_ids = _ONE
    n_roots = _U(0)
    best_iou = np.full(thresholds.size, -1.0)
    last = -1
    for t in range(thresholds.size):
        if wanted[t]:
            last = t
    j = _U(order.size)
    for t in range(last + 1):
        stop = starts[255 - thresholds[t]]
        while j > stop:
            j -= _ONE
            p, x, y = _pixel(order[j], pw)
            mask = _ring_mask(added, p, pw)
            added[p] = 1
            n_groups = _N_REPS4[mask]
            if n_groups == 0:
                root = n_ids
                n_ids += _ONE
                parent[root] = root
                size[root] = 1
                n_roots = _start(box, dirty, slot, roots, n_roots, root, x, y)
                label[p] = root
                continue
            root = _find(parent, _U(label[p + offsets[_REPS4[mask, 0]]]))
            for i in range(1, n_groups):
                other = _find(parent, _U(label[p + offsets[_REPS4[mask, i]]]))
                if other == root:
                    continue
                if other == _FRAME or (root != _FRAME and size[other] > size[root]):
                    root, other = other, root
                parent[other] = root
                if root == _FRAME:
                    n_roots = _drop(slot, roots, n_roots, other)
                else:
                    size[root] += size[other]
                    n_roots = _absorb(box, dirty, slot, roots, n_roots, root, other)
            if root != _FRAME:
                size[root] += 1
                box[root, 0] = min(box[root, 0], x)
                box[root, 1] = min(box[root, 1], y)
                box[root, 2] = max(box[root, 2], x)
                box[root, 3] = max(box[root, 3], y)
                dirty[root] = True
            label[p] = root
        if not wanted[t]:
            continue
        top = -1.0
        for i in range(n_roots):
            r = roots[i]
            if dirty[r]:
                cached_iou[r] = iou_with_gt(
                    box[r, 0] - 1,
                    box[r, 1] - 1,
                    min(box[r, 2] + 2, width - 1),
                    min(box[r, 3] + 2, height - 1),
                    gt,
                )
                dirty[r] = False
            top = max(top, cached_iou[r])
        best_iou[t] = top
    return best_iou
