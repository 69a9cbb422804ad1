"""BoxAccuracy: MaxBoxAcc / MaxBoxAccV2 for any score maps, with mergeable counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .pool import CountPool, split
from .quantize import cam_thresholds, quantize
from .search import maps_hits
from .validation import check_boxes, check_scoremaps, check_thresholds


def best_over_thresholds(correct: np.ndarray, images: int, taus: np.ndarray) -> dict[str, float]:
    """Max accuracy (%) over CAM thresholds and the first threshold reaching it."""
    accuracy = correct * 100.0 / float(images)
    best = int(np.argmax(accuracy))
    return {"acc": float(accuracy[best]), "cam_threshold": float(taus[best])}


def _box_counts(
    scoremaps: np.ndarray,
    gt_boxes: list[np.ndarray],
    taus: np.ndarray,
    iou_thresholds: tuple[int, ...],
    multi_contour: bool,
) -> np.ndarray:
    largest, every = maps_hits(
        quantize(scoremaps),
        taus,
        gt_boxes,
        np.arange(len(gt_boxes)),
        np.full(len(gt_boxes), multi_contour),
        iou_thresholds,
    )
    return (every if multi_contour else largest).sum(axis=0).ravel()


class BoxAccuracy:
    """Box accuracy over CAM thresholds (Choe et al., CVPR 2020), exact and fast.

    ``BoxAccuracy((50,), multi_contour=False)`` is MaxBoxAcc;
    ``BoxAccuracy((30, 50, 70), multi_contour=True)`` is MaxBoxAccV2.

    Per CAM threshold tau in ``np.arange(0, 1, cam_curve_interval)`` the map is
    quantised to uint8, thresholded at ``int(tau * max)``, and the box of the largest
    contour (or every contour, keeping the best) is matched with the image's GT boxes
    (best IoU, "+1" convention). The state is integer counts: :meth:`counts` /
    :meth:`load_counts` expose them as one int64 vector for ``all_reduce``; :meth:`merge`
    adds another meter's. Any split of the images over meters gives the same result.

    ``workers > 0`` spreads each :meth:`update` over that many processes.
    """

    def __init__(
        self,
        iou_thresholds: Sequence[int] = (30, 50, 70),
        cam_curve_interval: float = 0.01,
        multi_contour: bool = True,
        workers: int = 0,
    ) -> None:
        self.iou_thresholds = check_thresholds(iou_thresholds)
        self.cam_curve_interval = float(cam_curve_interval)
        self.taus = cam_thresholds(cam_curve_interval)
        self.multi_contour = bool(multi_contour)
        self._pool = CountPool(workers)
        self.reset()

    def reset(self) -> None:
        """Forget every image."""
        self.num_images = 0
        self.correct = np.zeros((len(self.iou_thresholds), len(self.taus)), np.int64)

    def update(self, scoremaps: Any, gt_boxes: Sequence[Any]) -> None:
        """Add images: score maps [B, H, W] in [0, 1] (array or tensor) and, per image,
        its GT boxes as an (n_i, 4) array of x0, y0, x1, y1 in the maps' pixel frame."""
        maps = check_scoremaps(scoremaps)
        boxes = check_boxes(gt_boxes, len(maps))
        chunks = [
            (maps[s], boxes[s], self.taus, self.iou_thresholds, self.multi_contour)
            for s in split(len(maps), max(1, self._pool.workers) * 4)
        ]
        self.correct += self._pool.sum_counts(_box_counts, chunks, self.correct.size).reshape(
            self.correct.shape
        )
        self.num_images += len(maps)

    def counts(self) -> np.ndarray:
        """The state as one int64 vector: [number of images, correct counts...]."""
        return np.concatenate([[self.num_images], self.correct.ravel()]).astype(np.int64)

    def load_counts(self, counts: Any) -> None:
        """Replace the state by a vector from :meth:`counts` (e.g. after an all-reduce)."""
        values = np.asarray(counts.cpu() if hasattr(counts, "cpu") else counts, np.int64)
        if values.shape != (1 + self.correct.size,):
            raise ValueError(
                f"counts must have shape ({1 + self.correct.size},) for "
                f"{len(self.iou_thresholds)} IoU x {len(self.taus)} CAM thresholds, "
                f"got {values.shape}"
            )
        self.num_images = int(values[0])
        self.correct = values[1:].reshape(self.correct.shape).copy()

    def merge(self, other: BoxAccuracy) -> BoxAccuracy:
        """Add another meter's counts (same configuration) to this one."""
        if (other.iou_thresholds, other.cam_curve_interval, other.multi_contour) != (
            self.iou_thresholds,
            self.cam_curve_interval,
            self.multi_contour,
        ):
            raise ValueError(
                "cannot merge BoxAccuracy meters with different iou_thresholds, "
                "cam_curve_interval or multi_contour"
            )
        self.num_images += other.num_images
        self.correct += other.correct
        return self

    def curves(self) -> dict[int, np.ndarray]:
        """Accuracy (%) at every CAM threshold, per IoU threshold."""
        self._require_images()
        return {
            t: self.correct[i] * 100.0 / float(self.num_images) for i, t in enumerate(self.iou_thresholds)
        }

    def compute(self) -> dict[str, Any]:
        """``{'per_iou': {iou: {'acc': %, 'cam_threshold': tau}}, 'mean': %,
        'num_images': n}``; each IoU threshold picks its own best CAM threshold."""
        self._require_images()
        per_iou = {
            t: best_over_thresholds(self.correct[i], self.num_images, self.taus)
            for i, t in enumerate(self.iou_thresholds)
        }
        return {
            "per_iou": per_iou,
            "mean": float(np.mean([entry["acc"] for entry in per_iou.values()])),
            "num_images": self.num_images,
        }

    def close(self) -> None:
        """Stop the worker processes, if any."""
        self._pool.close()

    def _require_images(self) -> None:
        if self.num_images == 0:
            raise ValueError("BoxAccuracy has no images yet: call update() first")
