"""The component sweep: every 8-connected component of ``image > T`` (box, area,
best IoU, holes by the Euler number) at every threshold, in one union-find sweep over
the pixels in decreasing value order; and grayscale hole filling, whose components
carry the outer contours' areas."""

from __future__ import annotations

import numba as nb
import numpy as np

from data_shards.boxes import iou_with_gt

from .scoring import _best_cover
from .tables import _CELL_GAIN, _EULER_GAIN, _N_REPS, _REPS
from .union_find import (
    _ONE,
    _U,
    _absorb,
    _descending_order,
    _find,
    _pixel,
    _ring_mask,
    _ring_offsets,
    _start,
    workspace,
)


@nb.njit(cache=True)
def component_sweep(
    image: np.ndarray, thresholds: np.ndarray, gt: np.ndarray, want_largest: bool, want_iou: bool
) -> tuple[np.ndarray, ...]:
    """Sweep the level sets ``image > T`` for ``thresholds`` (ascending, distinct).

    Returns, per threshold: the largest-area component's protocol box [n, 4] (zeros
    when there is no component), a flag when several components tie for the largest
    area with different boxes, the best IoU of any component's protocol box with
    ``gt`` (-1 when there is no component), whether the level set has holes (with
    ``want_iou``: holes whose boxes could beat that IoU), and whether holes could
    change which component is the largest.
    """
    work = workspace(*image.shape)
    starts = _descending_order(image, work[-1])
    largest, tie, best_iou, has_holes, cover, uncertain = _sweep(
        image, starts, thresholds, gt, want_largest, want_iou, work
    )
    if want_iou:
        has_holes &= cover > best_iou
    return largest, tie, best_iou, has_holes, uncertain


@nb.njit(cache=True)
def _sweep(
    image: np.ndarray,
    starts: np.ndarray,
    thresholds: np.ndarray,
    gt: np.ndarray,
    want_largest: bool,
    want_iou: bool,
    work: tuple,
):
    """:func:`component_sweep` over pixels already sorted by :func:`_descending_order`
    (into ``work``, a :func:`workspace`).

    Each pixel stores the id of the component it joined; the union-find runs over
    those ids, which are few, so it stays in cache. Returns the largest boxes, ties,
    best component IoUs, whether holes exist, the best share of a GT box covered by a
    component's box (a bound on any hole box's IoU: a hole lies inside its component)
    and whether holes could change which component is the largest (areas here count
    the components' own cells; outer contours also enclose the holes).
    """
    height, width = image.shape
    pw = _U(width + 2)
    offsets = _ring_offsets(width + 2)
    added, label, parent, size, box, area2, cached_iou, cached_cover, dirty, slot, roots, order = work
    added[:] = 0
    n_ids = _U(0)
    n_roots = _U(0)

    n_thr = thresholds.size
    largest = np.zeros((n_thr, 4), np.int64)
    tie = np.zeros(n_thr, np.bool_)
    best_iou = np.full(n_thr, -1.0)
    has_holes = np.zeros(n_thr, np.bool_)
    best_cover = np.zeros(n_thr)
    uncertain = np.zeros(n_thr, np.bool_)
    euler4 = 0  # 4 * (components - holes)
    done = _U(0)  # pixels with value > current level added
    for t in range(n_thr - 1, -1, -1):
        stop = starts[255 - thresholds[t]] if thresholds[t] < 255 else _U(0)
        for j in range(done, stop):
            p, x, y = _pixel(order[j], pw)
            mask = _ring_mask(added, p, pw)
            added[p] = 1
            euler4 += _EULER_GAIN[mask]
            n_groups = _N_REPS[mask]
            if n_groups == 0:
                c = n_ids
                n_ids += _ONE
                label[p] = c
                parent[c] = c
                size[c] = 1
                area2[c] = 0
                n_roots = _start(box, dirty, slot, roots, n_roots, c, x, y)
                continue
            root = _find(parent, _U(label[p + offsets[_REPS[mask, 0]]]))
            label[p] = root
            size[root] += 1
            area2[root] += _CELL_GAIN[mask]
            if x < box[root, 0]:
                box[root, 0] = x
                dirty[root] = True
            elif x > box[root, 2]:
                box[root, 2] = x
                dirty[root] = True
            if y < box[root, 1]:
                box[root, 1] = y
                dirty[root] = True
            elif y > box[root, 3]:
                box[root, 3] = y
                dirty[root] = True
            for i in range(1, n_groups):
                other = _find(parent, _U(label[p + offsets[_REPS[mask, i]]]))
                if other == root:
                    continue
                if size[other] > size[root]:
                    root, other = other, root
                parent[other] = root
                size[root] += size[other]
                area2[root] += area2[other]
                n_roots = _absorb(box, dirty, slot, roots, n_roots, root, other)
        done = max(done, stop)
        has_holes[t] = 4 * np.int64(n_roots) != euler4
        if n_roots == 0:
            continue
        if want_largest:
            best = roots[0]
            for i in range(n_roots):
                r = roots[i]
                if area2[r] > area2[best]:
                    best = r
                    tie[t] = False
                elif (
                    area2[r] == area2[best]
                    and r != best
                    and (
                        box[r, 0] != box[best, 0]
                        or box[r, 1] != box[best, 1]
                        or box[r, 2] != box[best, 2]
                        or box[r, 3] != box[best, 3]
                    )
                ):
                    tie[t] = True
            if has_holes[t]:
                # Holes add to outer contour areas; the winner is certain only if no
                # other component could outgrow it: a contour's area is at most that
                # of its pixel bounding box.
                for i in range(n_roots):
                    r = roots[i]
                    if r != best and 2 * (box[r, 2] - box[r, 0]) * (box[r, 3] - box[r, 1]) >= area2[best]:
                        uncertain[t] = True
                        break
            largest[t, 0] = box[best, 0]
            largest[t, 1] = box[best, 1]
            largest[t, 2] = min(box[best, 2] + 1, width - 1)
            largest[t, 3] = min(box[best, 3] + 1, height - 1)
            if (
                not want_iou
                and area2[best] > (height - 1) * (width - 1)
                and box[best, 0] == 0
                and box[best, 1] == 0
                and box[best, 2] == width - 1
                and box[best, 3] == height - 1
            ):
                # It spans the frame and holds more than half the image's area: at every
                # lower threshold it stays the largest (contours of other top-level
                # components enclose disjoint areas) and its box stays the frame.
                uncertain[t] = False
                for rest in range(t):
                    largest[rest] = largest[t]
                break
        if want_iou:
            top = -1.0
            cover = 0.0
            for i in range(n_roots):
                r = roots[i]
                if dirty[r]:
                    x1 = min(box[r, 2] + 1, width - 1)
                    y1 = min(box[r, 3] + 1, height - 1)
                    cached_iou[r] = iou_with_gt(box[r, 0], box[r, 1], x1, y1, gt)
                    cached_cover[r] = _best_cover(box[r, 0], box[r, 1], x1, y1, gt)
                    dirty[r] = False
                top = max(top, cached_iou[r])
                cover = max(cover, cached_cover[r])
            best_iou[t] = top
            best_cover[t] = cover
    return largest, tie, best_iou, has_holes, best_cover, uncertain


@nb.njit(cache=True)
def fill_holes(image: np.ndarray) -> np.ndarray:
    """Grayscale hole filling: the smallest level at which each pixel's background
    4-connected component reaches the image frame (>= the pixel's own value).

    ``image > t`` with its holes filled is ``fill_holes(image) > t`` for every t.
    """
    height, width = image.shape
    pw = width + 2
    value = np.zeros((height + 2) * pw, np.uint8)
    queued = np.ones((height + 2) * pw, np.bool_)  # the padding frame counts as done
    nxt = np.empty((height + 2) * pw, np.int32)
    head = np.full(256, -1, np.int32)
    for y in range(height):
        for x in range(width):
            p = (y + 1) * pw + x + 1
            level = image[y, x]
            value[p] = level
            if y == 0 or x == 0 or y == height - 1 or x == width - 1:
                nxt[p] = head[level]
                head[level] = p
            else:
                queued[p] = False
    offsets = (-pw, -1, 1, pw)
    level = 0
    while level < 256:
        p = head[level]
        if p == -1:
            level += 1
            continue
        head[level] = nxt[p]
        for k in range(4):
            q = p + offsets[k]
            if not queued[q]:
                queued[q] = True
                if value[q] < level:
                    value[q] = level
                nxt[q] = head[value[q]]
                head[value[q]] = q
    out = np.empty((height, width), np.uint8)
    for y in range(height):
        for x in range(width):
            out[y, x] = value[(y + 1) * pw + x + 1]
    return out
