"""A readable text table of LocalizationEvaluator results."""

from __future__ import annotations

from typing import Any


def _row(protocol: str, metric: str, iou: Any, entry: Any) -> str:
    if isinstance(entry, dict):
        tau = entry.get("cam_threshold")
        value = entry["acc"]
    else:
        tau, value = None, entry
    tau_text = f"{tau:.2f}" if tau is not None else "-"
    iou_text = str(iou) if iou is not None else "-"
    return f"{protocol:<12} {metric:<22} {iou_text:>4} {value:>8.2f} {tau_text:>8}"


def format_table(results: dict[str, Any]) -> str:
    """One line per metric: protocol, metric, IoU (%), accuracy (%), CAM threshold."""
    lines = [f"{'protocol':<12} {'metric':<22} {'IoU':>4} {'acc %':>8} {'CAM thr':>8}"]
    lines.append("-" * len(lines[0]))
    for protocol, block in results["protocols"].items():
        for metric, entry in block.items():
            if metric in ("per_iou", "iou"):
                continue
            if metric == "MaxBoxAccV2":
                lines.append(_row(protocol, metric, "mean", entry["acc"]))
                for iou, per in entry["per_iou"].items():
                    lines.append(_row(protocol, f"  {metric}", iou, per))
                continue
            iou = entry.get("iou") if isinstance(entry, dict) else None
            lines.append(_row(protocol, metric, iou, entry))
        for iou, metrics in block["per_iou"].items():
            for metric, entry in metrics.items():
                lines.append(_row(protocol, f"  {metric}", iou, entry))
    lines.append(f"images: {results['num_images']}")
    return "\n".join(lines)
