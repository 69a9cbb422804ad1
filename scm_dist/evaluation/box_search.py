"""Exact fast box search: the protocol's boxes at every CAM threshold in one sweep.

The literal protocol thresholds the uint8 map at up to 100 levels and runs OpenCV's
``findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`` each time. The contours of a binary image
are, by Suzuki & Abe's border following (foreground 8-connected, background
4-connected):

* one outer border per 8-connected foreground component; its bounding rect is the
  component's bounding box;
* one hole border per background 4-connected component that does not reach the image
  frame; its bounding rect is the hole's bounding box grown by one pixel on every side.

``cv2.contourArea`` of an outer border (a polygon through pixel centres, holes included)
is the number of 2x2 pixel cells with all four corners in the hole-filled component plus
half the cells with three. A hole border is never larger than its parent's outer border,
nested components are strictly smaller than their ancestors and OpenCV lists parents
before children, so the protocol's ``max(contours, key=contourArea)`` is always the outer
border of a top-level component: a component of the hole-filled map's level set.

So one union-find sweep over the pixels in decreasing value order gives every
component's box and own area (and, by Euler numbers, whether holes exist) at every
threshold. Where holes could change which component is the largest, the hole-filled map
is swept again (or, for a few thresholds, OpenCV settles it). For every contour's
boxes, one union-find sweep in increasing order over the background (the same sorted
pixels, reversed; the frame is one component) gives the hole boxes, at the thresholds
where a hole could beat the best component box (a hole lies inside its component's
box, which bounds its IoU) and, when only hits at given IoU thresholds are counted,
where it could lift the best IoU over one of them. Once one component spans the frame
with more than half the image's area, it is the largest at every lower threshold: the
largest-contour sweep stops there.

When two top-level components tie for the largest area with different boxes, the winner
depends on OpenCV's list order; those thresholds are flagged and the caller resolves
them with OpenCV itself (:func:`scm_dist.evaluation.contours.largest_contour_box`), so
the result is identical to the literal protocol for every map and threshold.
"""
from __future__ import annotations

import numba as nb
import numpy as np

# The 8 neighbours in ring order N, NE, E, SE, S, SW, W, NW (row, column offsets).
_RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
# The four 2x2 cells around a pixel, each as the ring bits of its other three corners.
_CELLS = (0b00000111, 0b00011100, 0b01110000, 0b11000001)


def _quad_euler(corners: int) -> int:
    """Four times a 2x2 cell's share of the 8-connected Euler number (Gray's bit quads)."""
    if corners in (0b0101, 0b1010):        # diagonal pair (corners in ring order)
        return -2
    return {1: 1, 3: -1}.get(bin(corners).count("1"), 0)


def _groups(mask: int, four: bool) -> list[int]:
    """First ring index of each group of the ring neighbours in ``mask`` that are
    connected among themselves (8-adjacent, or with ``four`` 4-adjacent: then only the
    groups holding a 4-neighbour of the pixel, the ones it joins)."""
    members = [k for k in range(8) if mask >> k & 1]
    group = {k: k for k in members}

    def root(k: int) -> int:
        while group[k] != k:
            k = group[k]
        return k

    for a in members:
        for b in members:
            (ya, xa), (yb, xb) = _RING[a], _RING[b]
            if (abs(ya - yb) + abs(xa - xb) if four else max(abs(ya - yb), abs(xa - xb))) == 1:
                group[root(a)] = root(b)
    joined = {root(k) for k in members if not four or k % 2 == 0}
    return sorted(min(k for k in members if root(k) == r) for r in joined)


def _neighbour_tables() -> tuple[np.ndarray, ...]:
    """Per mask of already-added neighbours: one ring index per group of mutually
    8-connected foreground neighbours (they are in one component already, so one union
    each) and the group count; the same for 4-connected background neighbours; the
    number of 2x2 cells that reach 3 or 4 foreground corners, and the change of four
    times the Euler number (components - holes) when the pixel turns foreground."""
    reps = np.zeros((2, 256, 4), np.int64)
    counts = np.zeros((2, 256), np.int64)
    cell_gain = np.zeros(256, np.int64)
    euler_gain = np.zeros(256, np.int64)
    for mask in range(256):
        for four in (0, 1):
            firsts = _groups(mask, bool(four))
            counts[four, mask] = len(firsts)
            reps[four, mask, :len(firsts)] = firsts
        cell_gain[mask] = sum(bin(mask & cell).count("1") >= 2 for cell in _CELLS)
        for cell in _CELLS:
            # the cell's corners in ring order around it: the pixel, then its 3 neighbours
            others = [mask >> k & 1 for k in range(8) if cell >> k & 1]
            if cell == _CELLS[3]:           # NW cell: W, NW, N in ring order
                others = [mask >> 6 & 1, mask >> 7 & 1, mask & 1]
            before = sum(bit << (i + 1) for i, bit in enumerate(others))
            euler_gain[mask] += _quad_euler(before | 1) - _quad_euler(before)
    return reps[0], counts[0], reps[1], counts[1], cell_gain, euler_gain


_REPS, _N_REPS, _REPS4, _N_REPS4, _CELL_GAIN, _EULER_GAIN = _neighbour_tables()
_MAX_OPENCV_SETTLED = 8
# Indices are unsigned (numba checks every signed index for wraparound, which doubles
# the cost of the sweeps); offsets to the left or up wrap around modulo 2**64.
_U = np.uint64
_ONE = _U(1)


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
def _start(box: np.ndarray, dirty: np.ndarray, slot: np.ndarray, roots: np.ndarray,
           n_roots: np.uint64, c: np.uint64, x: int, y: int) -> np.uint64:
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
def _absorb(box: np.ndarray, dirty: np.ndarray, slot: np.ndarray, roots: np.ndarray,
            n_roots: np.uint64, root: np.uint64, other: np.uint64) -> np.uint64:
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


@nb.njit(cache=True)
def _best_iou(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> float:
    """Largest IoU ("+1" convention) of one box with any GT box."""
    best = 0.0
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    for g in range(gt.shape[0]):
        iw = min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        ih = min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        inter = max(iw, 0) * max(ih, 0)
        gt_area = (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1)
        value = inter / (area + gt_area - inter)
        if value > best:
            best = value
    return best


@nb.njit(cache=True)
def _best_cover(x0: int, y0: int, x1: int, y1: int, gt: np.ndarray) -> float:
    """Largest share of a GT box covered by the box: a bound on the IoU of any box
    inside it (a hole's box lies inside its component's box)."""
    best = 0.0
    for g in range(gt.shape[0]):
        iw = min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1
        ih = min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1
        gt_area = (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1)
        value = max(iw, 0) * max(ih, 0) / gt_area
        if value > best:
            best = value
    return best


@nb.njit(cache=True)
def fill_holes(image: np.ndarray) -> np.ndarray:
    """Grayscale hole filling: the smallest level at which each pixel's background
    4-connected component reaches the image frame (>= the pixel's own value).

    ``image > t`` with its holes filled is ``fill_holes(image) > t`` for every t.
    """
    height, width = image.shape
    pw = width + 2
    value = np.zeros((height + 2) * pw, np.uint8)
    queued = np.ones((height + 2) * pw, np.bool_)     # the padding frame counts as done
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


@nb.njit(cache=True)
def workspace(height: int, width: int):
    """Work arrays of the sweeps of a height x width map, reused map after map (fresh
    ones cost page faults): the added flags and component ids of the padded grid; per
    component id (one per pixel at most, and the frame's) its parent, size, box
    (x0, y0, x1, y1 of its pixels), twice its area, cached IoU and GT cover, whether its
    box changed since, its position among the active roots and those roots; the
    sorted pixels."""
    padded = (height + 2) * (width + 2)
    capacity = height * width + 1
    return (np.empty(padded, np.uint8), np.empty(padded, np.uint32),
            np.empty(capacity, np.uint32), np.empty(capacity, np.int32),
            np.empty((capacity, 4), np.int32), np.empty(capacity, np.int64),
            np.empty(capacity), np.empty(capacity), np.empty(capacity, np.bool_),
            np.empty(capacity, np.uint32), np.empty(capacity, np.uint32),
            np.empty(height * width, np.uint64))


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
    return _U(added[p - pw] | (added[p - pw + _ONE] << 1) | (added[p + _ONE] << 2)
              | (added[p + pw + _ONE] << 3) | (added[p + pw] << 4) | (added[p + pw - _ONE] << 5)
              | (added[p - _ONE] << 6) | (added[p - pw - _ONE] << 7))


@nb.njit(cache=True)
def _ring_offsets(padded_width: int) -> np.ndarray:
    """Padded-grid offsets of the ring neighbours (negative ones wrap around)."""
    offsets = np.empty(8, np.uint64)
    for k in range(8):
        offsets[k] = _U(_RING[k][0] * padded_width + _RING[k][1])
    return offsets


@nb.njit(cache=True)
def component_sweep(image: np.ndarray, thresholds: np.ndarray, gt: np.ndarray,
                    want_largest: bool, want_iou: bool):
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
        image, starts, thresholds, gt, want_largest, want_iou, work)
    if want_iou:
        has_holes &= cover > best_iou
    return largest, tie, best_iou, has_holes, uncertain


@nb.njit(cache=True)
def _sweep(image: np.ndarray, starts: np.ndarray, thresholds: np.ndarray, gt: np.ndarray,
           want_largest: bool, want_iou: bool, work: tuple):
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
    added, label, parent, size, box, area2, cached_iou, cached_cover, dirty, slot, roots, \
        order = work
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
    euler4 = 0                                   # 4 * (components - holes)
    done = _U(0)                                 # pixels with value > current level added
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
                elif area2[r] == area2[best] and r != best and (
                        box[r, 0] != box[best, 0] or box[r, 1] != box[best, 1]
                        or box[r, 2] != box[best, 2] or box[r, 3] != box[best, 3]):
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
            if not want_iou and area2[best] > (height - 1) * (width - 1) and box[best, 0] == 0 \
                    and box[best, 1] == 0 and box[best, 2] == width - 1 \
                    and box[best, 3] == height - 1:
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
                    cached_iou[r] = _best_iou(box[r, 0], box[r, 1], x1, y1, gt)
                    cached_cover[r] = _best_cover(box[r, 0], box[r, 1], x1, y1, gt)
                    dirty[r] = False
                top = max(top, cached_iou[r])
                cover = max(cover, cached_cover[r])
            best_iou[t] = top
            best_cover[t] = cover
    return largest, tie, best_iou, has_holes, best_cover, uncertain


_FRAME = _U(0)   # component id of the padding frame and every background pixel reaching it


@nb.njit(cache=True)
def hole_sweep(image: np.ndarray, starts: np.ndarray, thresholds: np.ndarray, gt: np.ndarray,
               wanted: np.ndarray, work: tuple) -> np.ndarray:
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
    for p in range(n):
        y, x = divmod(p, width + 2)
        if y == 0 or x == 0 or y == height + 1 or x == width + 1:
            added[p] = 1
            label[p] = _FRAME
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
                cached_iou[r] = _best_iou(box[r, 0] - 1, box[r, 1] - 1,
                                          min(box[r, 2] + 2, width - 1),
                                          min(box[r, 3] + 2, height - 1), gt)
                dirty[r] = False
            top = max(top, cached_iou[r])
        best_iou[t] = top
    return best_iou


@nb.njit(cache=True)
def best_box_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Best IoU of each box [n, 4] with any GT box."""
    out = np.empty(boxes.shape[0])
    for i in range(boxes.shape[0]):
        out[i] = _best_iou(boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3], gt)
    return out


@nb.njit(cache=True)
def _holes_wanted(has_holes: np.ndarray, best: np.ndarray, cover: np.ndarray,
                  deltas: np.ndarray) -> np.ndarray:
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
def search_levels(image: np.ndarray, thresholds: np.ndarray, gt: np.ndarray,
                  multi_contour: bool, deltas: np.ndarray, work: tuple):
    """Per threshold (ascending, distinct): the largest contour's box, whether a tie
    leaves it to OpenCV's contour order, and (``multi_contour``) the best IoU of any
    contour's box with ``gt`` (-1 when there is no contour).

    With IoU thresholds ``deltas`` (non-empty), the best IoU is exact only as far as
    ``best >= delta`` goes for every delta (hole boxes that cannot change that are
    skipped); with an empty ``deltas`` it is exact. ``work``: a :func:`workspace`.
    """
    starts = _descending_order(image, work[-1])
    boxes, ties, best, has_holes, cover, uncertain = _sweep(
        image, starts, thresholds, gt, True, multi_contour, work)
    if multi_contour:
        wanted = _holes_wanted(has_holes, best, cover, deltas)
        if wanted.any():
            best = np.maximum(best, hole_sweep(image, starts, thresholds, gt, wanted, work))
    # A few uncertain thresholds are cheaper to settle with OpenCV (as ties) than by a
    # second sweep over the hole-filled map.
    if uncertain.sum() > _MAX_OPENCV_SETTLED:
        # the components of the hole-filled map carry the outer contours' areas
        boxes, ties, _, _, _ = component_sweep(fill_holes(image), thresholds, gt, True, False)
    else:
        ties |= uncertain
    return boxes, ties, best


@nb.njit(cache=True)
def map_search(image: np.ndarray, taus: np.ndarray, gt: np.ndarray, multi_contour: bool,
               deltas: np.ndarray, work: tuple):
    """:func:`search_levels` at the protocol's levels ``int(tau * max(image))``.

    Returns the distinct levels, each tau's index into them, and per level: the
    largest contour's box, its tie flag, its best IoU with ``gt`` and (``multi_contour``)
    the best IoU over every contour's box, with the protocol's [0, 0, 0, 0] box where
    there is no contour.
    """
    top = np.float64(image.max())
    per_tau = np.empty(taus.size, np.int64)
    for i in range(taus.size):
        per_tau[i] = np.int64(taus[i] * top)
    levels = np.unique(per_tau)
    index = np.searchsorted(levels, per_tau)
    boxes, ties, best = search_levels(image, levels, gt, multi_contour, deltas, work)
    if multi_contour:
        empty = _best_iou(0, 0, 0, 0, gt)
        for t in range(best.size):
            if best[t] < 0:
                best[t] = empty
    return levels, index, boxes, ties, best_box_iou(boxes, gt), best


@nb.njit(cache=True)
def maps_search(images: np.ndarray, taus: np.ndarray, gt: np.ndarray, gt_bounds: np.ndarray,
                multi_contour: np.ndarray, deltas: np.ndarray):
    """:func:`map_search` of every map ``images[i]`` against its GT boxes
    ``gt[gt_bounds[i, 0]:gt_bounds[i, 1]]``, spread over the taus: per map and tau the
    level, the largest contour's box, its tie flag and IoU, and the best IoU over every
    contour (-1 where not ``multi_contour``)."""
    n_maps, n_tau = images.shape[0], taus.size
    levels = np.empty((n_maps, n_tau), np.int64)
    boxes = np.empty((n_maps, n_tau, 4), np.int64)
    ties = np.empty((n_maps, n_tau), np.bool_)
    largest = np.empty((n_maps, n_tau))
    every = np.full((n_maps, n_tau), -1.0)
    work = workspace(images.shape[1], images.shape[2])
    for i in range(n_maps):
        found = map_search(images[i], taus, gt[gt_bounds[i, 0]:gt_bounds[i, 1]],
                           multi_contour[i], deltas, work)
        for j in range(n_tau):
            k = found[1][j]
            levels[i, j] = found[0][k]
            boxes[i, j] = found[2][k]
            ties[i, j] = found[3][k]
            largest[i, j] = found[4][k]
            if multi_contour[i]:
                every[i, j] = found[5][k]
    return levels, boxes, ties, largest, every
