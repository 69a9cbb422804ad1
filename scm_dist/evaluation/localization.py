"""WSOL metrics of model outputs for both protocols, as summable integer counters.

Protocols (docs/EVALUATION.md):

``wsol`` (Choe et al., CVPR 2020; clovaai/wsolevaluation): the score map is the
ground-truth class's localization map, resized to the eval frame with
``cv2.INTER_CUBIC`` and normalised as ``normalize_scoremap`` (subtract the min, divide
by the max; constant maps become zeros).

* MaxBoxAcc: best over CAM thresholds of the share of images whose largest-contour box
  has IoU >= 50% with a GT box; MaxBoxAccV2: mean over the IoU thresholds of the same
  with every contour's box (each IoU threshold picks its own CAM threshold).
* GT-known Loc = MaxBoxAcc. Top-k Loc = GT class among the top-k predictions and the
  GT class map's largest-contour box has IoU >= 50%. GT-known and Top-k Loc are all
  reported at MaxBoxAcc's best CAM threshold (the standard practice); ``per_iou`` gives
  the same at every IoU threshold, at that IoU threshold's best CAM threshold.

``scm-release`` (how the SCM release's ``test_cam.py`` counted): maps resized bilinearly
(its ``resize_cam``) and min-max normalised, largest contour only, with the maps of the
top-k *predicted* classes. "GT-known Top-k" counts an image when any of the top-k
predicted classes' maps gives IoU >= the threshold, whatever the label; "Top-k Loc"
counts it only through the top-k entry whose class is the GT label, with that class's
own map (the release's ``count()``: ``pred_labels[j] == gt_label``). Each metric, per
IoU threshold, is the best over CAM thresholds, reported with its own CAM threshold.

Top-k predictions are ``np.argsort(-logits, kind="stable")[:k]`` (ties: lower class
index first). Every count is an integer per (metric, k, IoU threshold, CAM threshold):
:meth:`LocalizationEvaluator.counts` is one int64 vector with a fixed layout, summable
across ranks, so 1 rank and N ranks give the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .box_accuracy import best_over_thresholds
from .pool import CountPool, split
from .quantize import cam_thresholds
from .scoremaps import quantized_scoremaps
from .search import maps_hits
from .validation import as_numpy, check_boxes, check_finite, check_thresholds

PROTOCOLS = ("wsol", "scm-release")
HEADLINE_IOU = 50
_BLOCK = 32  # maps resized and searched together (their float maps stay in cache)


@dataclass(frozen=True)
class CounterLayout:
    """Names and shapes of the blocks of the flat int64 counter vector."""

    n_k: int
    n_iou: int
    n_tau: int

    def shapes(self) -> dict[str, tuple[int, ...]]:
        grid = (self.n_iou, self.n_tau)
        return {
            "images": (1,),
            "cls": (self.n_k,),  # GT among top-k
            "wsol_gt_known": grid,  # GT map, largest contour
            "wsol_gt_known_all": grid,  # GT map, every contour
            "wsol_loc": (self.n_k, *grid),  # top-k correct and GT map hit
            "release_gt_known": (self.n_k, *grid),  # a top-k predicted map hits
            "release_loc": (self.n_k, *grid),  # GT among top-k and its own map hits
        }

    @property
    def size(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.shapes().values())

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views into ``flat`` (writes go through)."""
        out, start = {}, 0
        for name, shape in self.shapes().items():
            stop = start + int(np.prod(shape))
            out[name] = flat[start:stop].reshape(shape)
            start = stop
        return out


@dataclass(frozen=True)
class _Settings:
    image_size: tuple[int, int]
    taus: np.ndarray
    iou_thresholds: tuple[int, ...]
    topk: tuple[int, ...]

    @property
    def layout(self) -> CounterLayout:
        return CounterLayout(len(self.topk), len(self.iou_thresholds), len(self.taus))


def fast_search(
    settings: _Settings,
    protocol: str,
    maps: list[np.ndarray],
    gt_boxes: list[np.ndarray],
    multi_contour: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Hits [n, n_iou, n_tau] of every map's largest contour's box and of the best box
    over every contour (none where not ``multi_contour``), by the exact fast box search
    on the ``protocol``'s score maps. Per image: its maps [n_i, h, w], GT boxes and
    multi-contour flags [n_i]; the results are the images' maps in turn."""
    every_map = np.concatenate(maps)
    owner = np.repeat(np.arange(len(maps)), [len(image_maps) for image_maps in maps])
    multi = np.concatenate(multi_contour)
    hits = [
        maps_hits(
            quantized_scoremaps(every_map[block], settings.image_size, protocol),
            settings.taus,
            gt_boxes,
            owner[block],
            multi[block],
            settings.iou_thresholds,
        )
        for block in (slice(start, start + _BLOCK) for start in range(0, len(every_map), _BLOCK))
    ]
    return (np.concatenate([largest for largest, _ in hits]), np.concatenate([every for _, every in hits]))


def image_counts(
    settings: _Settings,
    maps: list[np.ndarray],
    classes: list[np.ndarray],
    ranked: np.ndarray,
    labels: np.ndarray,
    gt_boxes: list[np.ndarray],
    search: Callable = fast_search,
) -> np.ndarray:
    """Counters of a chunk of images. Per image: the localization maps [n, h, w] of the
    classes ``classes`` (sorted: the GT class and the top predictions) and the ranked top
    predictions [n_images, max k]; ``search`` gives the maps' hits (as
    :func:`fast_search`). The wsol protocol searches the GT class's map (every contour
    too), scm-release the top-k predicted classes' maps, each with its own resize."""
    flat = np.zeros(settings.layout.size, np.int64)
    view = settings.layout.views(flat)
    view["images"][0] = len(labels)
    if not len(labels):
        return flat
    gt_maps = [m[np.searchsorted(c, label)][None] for m, c, label in zip(maps, classes, labels)]
    top_maps = [m[np.searchsorted(c, top)] for m, c, top in zip(maps, classes, ranked)]
    largest, every = search(settings, "wsol", gt_maps, gt_boxes, [np.ones(1, bool)] * len(labels))
    view["wsol_gt_known"] += largest.sum(axis=0)
    view["wsol_gt_known_all"] += every.sum(axis=0)
    never = [np.zeros(ranked.shape[1], bool)] * len(labels)
    top_hits = search(settings, "scm-release", top_maps, gt_boxes, never)[0]
    top_hits = top_hits.reshape(*ranked.shape, *top_hits.shape[1:])  # [n, max k, n_iou, n_tau]
    is_label = ranked == labels[:, None]
    for i, k in enumerate(settings.topk):
        in_top = is_label[:, :k].any(axis=1)
        view["cls"][i] += in_top.sum()
        view["wsol_loc"][i] += largest[in_top].sum(axis=0)
        view["release_gt_known"][i] += top_hits[:, :k].max(axis=1).sum(axis=0)
        # the release's count(): only the entry whose class is the label, with its own map
        view["release_loc"][i] += top_hits[:, :k][is_label[:, :k]].sum(axis=0)
    return flat


def needed_maps(
    logits: np.ndarray, cams: Any, labels: np.ndarray, k: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per image: the float32 maps of the GT class and the top-k predicted classes, those
    classes, and the top-k ranking (stable: ties go to the lower class index).

    ``cams`` may be a (GPU) tensor: only the needed maps are copied to the host.
    """
    ranked = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    classes = [np.unique(np.append(top, label)) for top, label in zip(ranked, labels)]
    needed = [as_numpy(cams[b, c], "cams").astype(np.float32) for b, c in enumerate(classes)]
    for b, image_maps in enumerate(needed):
        check_finite(image_maps, f"cams[{b}]")
    return needed, classes, ranked


class LocalizationEvaluator:
    """Counts every WSOL metric of both protocols over batches of model outputs.

    ``update(logits [B, K], cams [B, K, h, w], labels [B], gt_boxes)`` with GT boxes in
    the eval frame ``image_size`` (H, W), e.g. (224, 224). ``cams`` are the
    localization maps (any real values; each is resized and min-max normalised).
    ``workers > 0`` spreads each update over that many processes.
    """

    def __init__(
        self,
        image_size: tuple[int, int] = (224, 224),
        iou_thresholds: Sequence[int] = (30, 50, 70),
        cam_curve_interval: float = 0.01,
        topk: Sequence[int] = (1, 5),
        workers: int = 0,
    ) -> None:
        thresholds = check_thresholds(iou_thresholds)
        if HEADLINE_IOU not in thresholds:
            raise ValueError(
                f"iou_thresholds must include {HEADLINE_IOU} (MaxBoxAcc, GT-known "
                f"and Top-k Loc are at IoU {HEADLINE_IOU}), got {thresholds}"
            )
        ks = tuple(int(k) for k in topk)
        if not ks or any(k < 1 for k in ks) or len(set(ks)) != len(ks):
            raise ValueError(f"topk must be distinct positive integers, got {tuple(topk)}")
        height, width = (int(v) for v in image_size)
        if height < 1 or width < 1:
            raise ValueError(f"image_size must be positive (H, W), got {image_size}")
        self.cam_curve_interval = float(cam_curve_interval)
        self.settings = _Settings((height, width), cam_thresholds(cam_curve_interval), thresholds, ks)
        self._pool = CountPool(workers)
        self.reset()

    @property
    def layout(self) -> CounterLayout:
        return self.settings.layout

    def reset(self) -> None:
        self._counts = np.zeros(self.layout.size, np.int64)

    @property
    def num_images(self) -> int:
        return int(self._counts[0])

    def update(self, logits: Any, cams: Any, labels: Any, gt_boxes: Sequence[Any]) -> None:
        """Add a batch (arrays or tensors; see the class docstring)."""
        scores = as_numpy(logits, "logits")
        maps = cams if hasattr(cams, "detach") else as_numpy(cams, "cams")
        targets = as_numpy(labels, "labels")
        if scores.ndim != 2:
            raise ValueError(f"logits must have shape [B, K], got {scores.shape}")
        batch, num_classes = scores.shape
        if maps.ndim != 4 or tuple(maps.shape[:2]) != (batch, num_classes):
            raise ValueError(
                f"cams must have shape [B, K, h, w] = [{batch}, {num_classes}, h, w] "
                f"to match logits, got {tuple(maps.shape)}"
            )
        if targets.shape != (batch,) or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(
                f"labels must be {batch} integer class indices, got shape "
                f"{targets.shape} dtype {targets.dtype}"
            )
        if ((targets < 0) | (targets >= num_classes)).any():
            raise ValueError(f"labels must lie in [0, {num_classes}), got {targets.tolist()}")
        if max(self.settings.topk) > num_classes:
            raise ValueError(f"topk {self.settings.topk} exceeds the {num_classes} classes")
        check_finite(scores, "logits")
        boxes = check_boxes(gt_boxes, batch)
        needed, classes, ranked = needed_maps(scores, maps, targets, max(self.settings.topk))
        chunks = [
            (self.settings, needed[s], classes[s], ranked[s], targets[s], boxes[s])
            for s in split(batch, max(1, self._pool.workers) * 4)
        ]
        self._counts += self._pool.sum_counts(image_counts, chunks, self.layout.size)

    def counts(self) -> np.ndarray:
        """All counters as one int64 vector (fixed layout: :attr:`layout`)."""
        return self._counts.copy()

    def load_counts(self, counts: Any) -> None:
        """Replace the counters by a vector from :meth:`counts` (e.g. all-reduced)."""
        values = np.asarray(counts.cpu() if hasattr(counts, "cpu") else counts, np.int64)
        if values.shape != (self.layout.size,):
            raise ValueError(
                f"counts must have shape ({self.layout.size},) for this evaluator's "
                f"layout {self.layout}, got {values.shape}"
            )
        self._counts = values.copy()

    def merge(self, other: LocalizationEvaluator) -> LocalizationEvaluator:
        """Add another evaluator's counters (same settings)."""
        if (
            other.layout,
            other.settings.image_size,
            other.cam_curve_interval,
            other.settings.iou_thresholds,
            other.settings.topk,
        ) != (
            self.layout,
            self.settings.image_size,
            self.cam_curve_interval,
            self.settings.iou_thresholds,
            self.settings.topk,
        ):
            raise ValueError("cannot merge LocalizationEvaluators with different settings")
        self._counts += other._counts
        return self

    def curves(self) -> dict[str, dict[int, np.ndarray]]:
        """Accuracy (%) at every CAM threshold per IoU threshold, for the box metrics."""
        view, n = self._view()
        return {
            "wsol GT-known (largest contour)": _per_iou_curves(view["wsol_gt_known"], n, self),
            "wsol MaxBoxAccV2 (all contours)": _per_iou_curves(view["wsol_gt_known_all"], n, self),
            **{
                f"scm-release GT-known Top-{k}": _per_iou_curves(view["release_gt_known"][i], n, self)
                for i, k in enumerate(self.settings.topk)
            },
        }

    def compute(self) -> dict[str, Any]:
        """Every metric of both protocols (percentages) as a JSON-able dict."""
        view, n = self._view()
        taus = self.settings.taus
        ious = self.settings.iou_thresholds
        cls = {f"Top-{k} Cls": float(view["cls"][i] * 100.0 / n) for i, k in enumerate(self.settings.topk)}

        def at(counts: np.ndarray, tau_index: int) -> dict[str, float]:
            return {"acc": float(counts[tau_index] * 100.0 / n), "cam_threshold": float(taus[tau_index])}

        wsol_per_iou = {}
        for j, iou in enumerate(ious):
            best = int(np.argmax(view["wsol_gt_known"][j]))
            wsol_per_iou[iou] = {
                "GT-known Loc": at(view["wsol_gt_known"][j], best),
                **{
                    f"Top-{k} Loc": at(view["wsol_loc"][i, j], best) for i, k in enumerate(self.settings.topk)
                },
            }
        v2 = {iou: best_over_thresholds(view["wsol_gt_known_all"][j], n, taus) for j, iou in enumerate(ious)}
        wsol = {
            "MaxBoxAcc": {**wsol_per_iou[HEADLINE_IOU]["GT-known Loc"], "iou": HEADLINE_IOU},
            "MaxBoxAccV2": {"acc": float(np.mean([e["acc"] for e in v2.values()])), "per_iou": v2},
            **{name: {**value, "iou": HEADLINE_IOU} for name, value in wsol_per_iou[HEADLINE_IOU].items()},
            **cls,
            "per_iou": wsol_per_iou,
        }
        release_per_iou = {
            iou: {
                **{
                    f"GT-known Top-{k}": best_over_thresholds(view["release_gt_known"][i, j], n, taus)
                    for i, k in enumerate(self.settings.topk)
                },
                **{
                    f"Top-{k} Loc": best_over_thresholds(view["release_loc"][i, j], n, taus)
                    for i, k in enumerate(self.settings.topk)
                },
            }
            for j, iou in enumerate(ious)
        }
        release = {
            **{name: {**entry, "iou": HEADLINE_IOU} for name, entry in release_per_iou[HEADLINE_IOU].items()},
            **cls,
            "per_iou": release_per_iou,
        }
        return {
            "num_images": n,
            "iou_thresholds": list(ious),
            "cam_curve_interval": self.cam_curve_interval,
            "topk": list(self.settings.topk),
            "image_size": list(self.settings.image_size),
            "protocols": {"wsol": wsol, "scm-release": release},
        }

    def close(self) -> None:
        """Stop the worker processes, if any."""
        self._pool.close()

    def _view(self) -> tuple[dict[str, np.ndarray], int]:
        if self.num_images == 0:
            raise ValueError("LocalizationEvaluator has no images yet: call update() first")
        return self.layout.views(self._counts), self.num_images


def _per_iou_curves(
    counts: np.ndarray, images: int, evaluator: LocalizationEvaluator
) -> dict[int, np.ndarray]:
    return {iou: counts[j] * 100.0 / images for j, iou in enumerate(evaluator.settings.iou_thresholds)}
