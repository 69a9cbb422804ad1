"""Distributed evaluation of a checkpoint: ``scm-eval`` and ``eval.after_train``.

Every rank evaluates its exact-once share of ``data.val_dir``, counts into a
:class:`LocalizationEvaluator`, and the integer counters are summed across ranks; rank 0
writes ``results.json``, prints the table and draws the pictures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from tqdm import tqdm

from ..config import ExperimentConfig, config_to_dict
from ..data import build_eval_loader
from ..engine.distributed import LaunchEnv
from ..engine.loop import build_model
from ..export import read_state_dict
from ..models import convert_checkpoint
from ..models.wsol import LOCALIZATION_MAPS
from .checkpoint_checks import check_class_count, check_pos_embed
from .distributed import all_reduce_counts
from .localization import LocalizationEvaluator
from .pictures import panel_path, save_panel, save_threshold_curves
from .scoremaps import localization_box
from .table import format_table

log = logging.getLogger("scm_dist.eval")
RESULTS = "results.json"


def _process_group(launch: LaunchEnv) -> tuple[int, int]:
    """Join (or reuse, after training) the process group the launcher describes."""
    if launch.world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def load_eval_model(cfg: ExperimentConfig, checkpoint: str | Path) -> torch.nn.Module:
    """The configured model at the eval size, with the checkpoint's weights (strict)."""
    state = read_state_dict(checkpoint)
    head = state.get("head.weight")
    if head is None or head.ndim != 4:
        raise ValueError(
            f"{checkpoint} has no conv class-map head (head.weight [K, D, 3, 3]); "
            "it is not a TS-CAM / SCM checkpoint"
        )
    num_classes = head.shape[0]
    if cfg.model.num_classes and cfg.model.num_classes != num_classes:
        raise ValueError(
            f"{checkpoint} has {num_classes} classes but model.num_classes={cfg.model.num_classes}"
        )
    model = build_model(cfg, num_classes, img_size=cfg.data.eval_size, load_pretrained=False)
    check_pos_embed(state, model, checkpoint, cfg.model.resample_pos_embed)
    model.load_state_dict(convert_checkpoint(state, model, source=str(checkpoint)))
    return model.eval()


def _denormalize(images: torch.Tensor) -> np.ndarray:
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
    pixels = (images.float().cpu() * std + mean).clamp(0, 1) * 255
    return pixels.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _draw_pictures(
    pictures: list[dict], results: dict, evaluator: LocalizationEvaluator, out_dir: Path, size: int
) -> None:
    tau = results["protocols"]["wsol"]["MaxBoxAcc"]["cam_threshold"]
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
def evaluate(cfg: ExperimentConfig, checkpoint: str | Path) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on every rank; rank 0 writes and returns the results."""
    launch = LaunchEnv.from_environment()
    rank, world_size = _process_group(launch)
    device = torch.device(f"cuda:{launch.local_rank}" if torch.cuda.is_available() else "cpu")
    model = load_eval_model(cfg, checkpoint).to(device)
    loader = build_eval_loader(cfg.data, rank=rank, world_size=world_size)
    check_class_count(checkpoint, model.num_classes, loader.num_classes, cfg.data.val_dir)
    size = cfg.data.eval_size
    evaluator = LocalizationEvaluator(
        image_size=(size, size),
        iou_thresholds=cfg.eval.iou_thresholds,
        cam_curve_interval=cfg.eval.cam_curve_interval,
        topk=sorted({1, cfg.eval.top_k}),
    )
    pictures: list[dict] = []
    for batch in tqdm(loader, desc=f"eval rank {rank}", disable=rank != 0, unit="batch"):
        out = model(batch.images.to(device))
        evaluator.update(out.logits.float(), out.cams.float(), batch.labels, batch.boxes)
        wanted = cfg.eval.num_pictures - len(pictures) if rank == 0 else 0
        if wanted > 0:
            images = _denormalize(batch.images[:wanted])
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
    all_reduce_counts(evaluator, device="cpu" if not torch.cuda.is_available() else device)
    if rank != 0:
        return {}
    results = evaluator.compute()
    results.update(checkpoint=str(checkpoint), world_size=world_size, config=config_to_dict(cfg))
    results.update(map_family=model.map_family, localization_map=LOCALIZATION_MAPS[model.map_family])
    out_dir = Path(cfg.eval.output_dir or Path(cfg.train.output_dir) / "eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / RESULTS).write_text(json.dumps(results, indent=2, default=str))
    _draw_pictures(pictures, results, evaluator, out_dir, size)
    print(format_table(results))
    log.info("results: %s; pictures: %s", out_dir / RESULTS, out_dir / "pictures")
    return results
