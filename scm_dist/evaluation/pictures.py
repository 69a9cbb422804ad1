"""PNG pictures: per-image localization panels and accuracy-versus-CAM-threshold curves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from data_shards.names import safe_file_stem


def _pyplot():
    """matplotlib's pyplot on the Agg backend (imported on first use: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def panel_path(folder: str | Path, key: str) -> Path:
    """Where the panel of sample ``key`` goes: a file directly inside ``folder`` whatever the key
    holds (keys come from the shards: ``../x`` or ``a/b`` must not pick the place)."""
    return Path(folder) / f"{safe_file_stem(key)}.png"


def _draw_boxes(axis, boxes: np.ndarray, color: str) -> None:
    from matplotlib.patches import Rectangle

    for x0, y0, x1, y1 in np.asarray(boxes, dtype=float).reshape(-1, 4):
        axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=2))


def _to_frame(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    values = np.asarray(values, np.float32)
    if values.shape != size:
        values = cv2.resize(values, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return values


def save_panel(
    path: str | Path,
    image: np.ndarray,
    attention: np.ndarray,
    class_map: np.ndarray,
    localization_map: np.ndarray,
    gt_boxes: np.ndarray,
    predicted_box: np.ndarray,
    title: str = "",
) -> Path:
    """One image's panel: the image, the attention map, the class map, and the
    localization map over the image with GT boxes (green) and the predicted box (red).

    ``image`` is H x W x 3 uint8 in the eval frame; maps of any size are resized to it.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8, got {image.shape} {image.dtype}")
    size = image.shape[:2]
    plt = _pyplot()
    figure, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    panels = [
        ("image", None),
        ("attention", attention),
        ("class map", class_map),
        ("localization", localization_map),
    ]
    for axis, (name, values) in zip(axes, panels):
        axis.set_axis_off()
        axis.set_title(name)
        if values is None:
            axis.imshow(image)
        elif name == "localization":
            axis.imshow(image)
            axis.imshow(_to_frame(values, size), cmap="jet", alpha=0.5)
        else:
            axis.imshow(_to_frame(values, size), cmap="jet")
    for axis in (axes[0], axes[3]):
        _draw_boxes(axis, gt_boxes, "lime")
        _draw_boxes(axis, predicted_box, "red")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def save_threshold_curves(
    path: str | Path, taus: np.ndarray, curves: Mapping[str, Mapping[int, np.ndarray]]
) -> Path:
    """Accuracy (%) against the CAM threshold, one line per IoU threshold, one plot per
    metric (e.g. :meth:`LocalizationEvaluator.curves`)."""
    if not curves:
        raise ValueError("no curves to plot")
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), squeeze=False)
    for axis, (name, per_iou) in zip(axes[0], curves.items()):
        for iou, accuracy in per_iou.items():
            accuracy = np.asarray(accuracy)
            if accuracy.shape != np.shape(taus):
                raise ValueError(
                    f"curve {name!r} IoU {iou}: {accuracy.shape[0]} values for {len(taus)} CAM thresholds"
                )
            best = int(np.argmax(accuracy))
            axis.plot(taus, accuracy, label=f"IoU {iou}: max {accuracy[best]:.1f} @ {taus[best]:.2f}")
            axis.plot(taus[best], accuracy[best], "o", color=axis.lines[-1].get_color())
        axis.set_title(name)
        axis.set_xlabel("CAM threshold")
        axis.set_ylabel("accuracy (%)")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return _save(figure, path)


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    _pyplot().close(figure)
    return path
