"""Distributed evaluation of a model: ``scm-eval`` and ``eval.after_train``.

Every rank evaluates its exact-once share of the validation loader, counts into a
:class:`LocalizationEvaluator`, and the integer counters are summed across ranks through
the runtime; rank 0 writes ``results.json`` (the protocols named by ``eval.protocols``),
prints the table and draws the pictures. The application layer (``scm_dist.app``) builds
the model and the loader; nothing here knows about training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import ExperimentConfig, config_to_dict
from ..data import EvalLoader
from ..data.device_input import normalize, to_device
from ..files import write_text_atomic
from ..models.wsol import LOCALIZATION_MAPS, DeiTWSOL
from ..runtime import Runtime
from .distributed import all_reduce_counts
from .localization import LocalizationEvaluator
from .pictures import panel_path, save_panel, save_threshold_curves
from .scoremaps import localization_box
from .table import format_table

log = logging.getLogger("scm_dist.eval")
RESULTS = "results.json"


def _draw_pictures(
    pictures: list[dict], tau: float, evaluator: LocalizationEvaluator, out_dir: Path, size: int
) -> None:
    for item in pictures:
        _, box = localization_box(item["cam"], (size, size), tau)
        save_panel(
            panel_path(out_dir / "pictures", item["key"]),
            item["image"],
            item["attention"],
            item["class_map"],
            item["cam"],
            item["boxes"],
            np.asarray(box).reshape(1, 4),
            title=f"{item['key']}: class {item['label']}, predicted {item['pred']} (CAM threshold {tau:.2f})",
        )
    save_threshold_curves(out_dir / "threshold_curves.png", evaluator.settings.taus, evaluator.curves())


@torch.no_grad()
def evaluate(
    cfg: ExperimentConfig, runtime: Runtime, model: DeiTWSOL, loader: EvalLoader, checkpoint: str
) -> dict[str, Any]:
    """Evaluate ``model`` (in eval mode, on ``runtime.device``) on this rank's share of
    ``loader``; rank 0 writes and returns the results ({} elsewhere)."""
    size = cfg.data.eval_size
    evaluator = LocalizationEvaluator(
        image_size=(size, size),
        iou_thresholds=cfg.eval.iou_thresholds,
        cam_curve_interval=cfg.eval.cam_curve_interval,
        topk=sorted({1, cfg.eval.top_k}),
    )
    pictures: list[dict] = []
    for batch in tqdm(loader, desc=f"eval rank {runtime.rank}", disable=not runtime.is_main, unit="batch"):
        out = model(normalize(to_device(batch.images, runtime.device)))
        evaluator.update(out.logits.float(), out.cams.float(), batch.labels, batch.boxes)
        wanted = cfg.eval.num_pictures - len(pictures) if runtime.is_main else 0
        if wanted > 0:
            images = batch.images[:wanted].permute(0, 2, 3, 1).numpy()  # uint8 HWC
            for i, image in enumerate(images):
                label = int(batch.labels[i])
                pictures.append(
                    {
                        "key": batch.keys[i],
                        "image": image,
                        "label": label,
                        "pred": int(out.logits[i].argmax()),
                        "attention": out.attention[i].float().cpu().numpy(),
                        "class_map": out.class_maps[i, label].float().cpu().numpy(),
                        "cam": out.cams[i, label].float().cpu().numpy(),
                        "boxes": batch.boxes[i].numpy(),
                    }
                )
    all_reduce_counts(evaluator, runtime)
    if not runtime.is_main:
        return {}
    results = evaluator.compute()
    # the pictures' boxes use the wsol protocol's best CAM threshold, whichever are reported
    tau = results["protocols"]["wsol"]["MaxBoxAcc"]["cam_threshold"]
    results["protocols"] = {p: results["protocols"][p] for p in cfg.eval.protocols}
    results.update(checkpoint=checkpoint, world_size=runtime.world_size, config=config_to_dict(cfg))
    results.update(map_family=model.map_family, localization_map=LOCALIZATION_MAPS[model.map_family])
    out_dir = Path(cfg.eval.output_dir or Path(cfg.train.output_dir) / "eval")
    write_text_atomic(out_dir / RESULTS, json.dumps(results, indent=2, default=str))
    _draw_pictures(pictures, tau, evaluator, out_dir, size)
    print(format_table(results))
    log.info("results: %s; pictures: %s", out_dir / RESULTS, out_dir / "pictures")
    return results
