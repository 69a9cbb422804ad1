"""Entry points: the protocol's boxes and IoUs of one map at given levels or CAM
thresholds, and of a block of maps sharing one workspace."""

from __future__ import annotations

import numba as nb
import numpy as np

from data_shards.boxes import best_box_iou, iou_with_gt

from .components import _sweep, component_sweep, fill_holes
from .holes import _holes_wanted, hole_sweep
from .union_find import _descending_order, workspace

_MAX_OPENCV_SETTLED = 8


@nb.njit(cache=True)
def search_levels(
    image: np.ndarray,
    thresholds: np.ndarray,
    gt: np.ndarray,
    multi_contour: bool,
    deltas: np.ndarray,
    work: tuple,
) -> tuple[np.ndarray, ...]:
    """Per threshold (ascending, distinct): the largest contour's box, whether a tie
    leaves it to OpenCV's contour order, and (``multi_contour``) the best IoU of any
    contour's box with ``gt`` (-1 when there is no contour).

    With IoU thresholds ``deltas`` (non-empty), the best IoU is exact only as far as
    ``best >= delta`` goes for every delta (hole boxes that cannot change that are
    skipped); with an empty ``deltas`` it is exact. ``work``: a :func:`workspace`.
    """
    starts = _descending_order(image, work[-1])
    boxes, ties, best, has_holes, cover, uncertain = _sweep(
        image, starts, thresholds, gt, True, multi_contour, work
    )
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
def map_search(
    image: np.ndarray, taus: np.ndarray, gt: np.ndarray, multi_contour: bool, deltas: np.ndarray, work: tuple
) -> tuple[np.ndarray, ...]:
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
        empty = iou_with_gt(0, 0, 0, 0, gt)
        for t in range(best.size):
            if best[t] < 0:
                best[t] = empty
    return levels, index, boxes, ties, best_box_iou(boxes, gt), best


@nb.njit(cache=True)
def maps_search(
    images: np.ndarray,
    taus: np.ndarray,
    gt: np.ndarray,
    gt_bounds: np.ndarray,
    multi_contour: np.ndarray,
    deltas: np.ndarray,
) -> tuple[np.ndarray, ...]:
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
        found = map_search(
            images[i], taus, gt[gt_bounds[i, 0] : gt_bounds[i, 1]], multi_contour[i], deltas, work
        )
        for j in range(n_tau):
            k = found[1][j]
            levels[i, j] = found[0][k]
            boxes[i, j] = found[2][k]
            ties[i, j] = found[3][k]
            largest[i, j] = found[4][k]
            if multi_contour[i]:
                every[i, j] = found[5][k]
    return levels, boxes, ties, largest, every
