"""The application: the experiment config turned into ready objects, then train and evaluate.

    runtime = start_runtime(cfg)                      # ranks, device, process group, logging
    summary = train(cfg, stop=StopFlag(), runtime=runtime)   # evaluates after when asked
    results = evaluate(cfg, "runs/x/model_final.pt", runtime=runtime)

This is the only module that knows both halves: the engine (``scm_dist.engine``) gets a
runtime, a loader, a model and a backend and knows nothing about evaluation; the
evaluation (``scm_dist.evaluation.run``) gets a runtime, a model and a loader and knows
nothing about training. ``scm-train``, ``scm-eval`` and the SLURM jobs all come here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .config import ExperimentConfig
from .runtime import Runtime, WorldSizeError
from .stop import StopFlag

log = logging.getLogger("scm_dist.app")


def start_runtime(cfg: ExperimentConfig, training: bool = True) -> Runtime:
    """The process's runtime; DeepSpeed training needs a process group even alone."""
    return Runtime.start(need_group=training and cfg.train.engine == "deepspeed")


def check_world_size(runtime: Runtime, expected: int) -> None:
    """``train.expected_world_size``: refuse a launch that silently trains alone (see the
    README's accelerate notes)."""
    if expected and runtime.world_size != expected:
        raise WorldSizeError(
            f"train.expected_world_size={expected} but {runtime.world_size} process(es) are "
            "running; change the launch (on a CPU host: accelerate launch --config_file "
            "configs/accelerate/cpu_2proc.yaml, or torchrun) or the config"
        )


def build_trainer(cfg: ExperimentConfig, runtime: Runtime, stop: StopFlag | None = None):
    """Loader, model, backend and :class:`~scm_dist.engine.Trainer` for ``cfg`` on ``runtime``."""
    from .data import build_train_loader
    from .engine import Trainer, check_sizes, grad_accumulation, make_backend, num_classes, seed_everything
    from .models.build import build_model

    check_sizes(cfg)
    check_world_size(runtime, cfg.train.expected_world_size)
    accum = grad_accumulation(cfg, runtime.world_size)
    backend = make_backend(cfg, runtime, accum)
    seed_everything(cfg.seed)
    loader = build_train_loader(cfg.data, rank=runtime.rank, world_size=runtime.world_size, seed=cfg.seed)
    model = build_model(cfg.model, num_classes(cfg, loader))  # same seed: same init on every rank
    model.set_grad_checkpointing(cfg.train.grad_checkpointing)
    if cfg.train.compile:
        model.compile()  # in place: the state dict keeps its keys (checkpoints, export)
    return Trainer(cfg, runtime, backend, loader, model, stop)


def train(
    cfg: ExperimentConfig, stop: StopFlag | None = None, runtime: Runtime | None = None
) -> dict[str, Any]:
    """Train as configured (resuming from ``train.output_dir``), then evaluate the final
    model when ``eval.after_train`` is set; the summary (with ``eval`` on rank 0)."""
    runtime = runtime or start_runtime(cfg)
    trainer = build_trainer(cfg, runtime, stop)
    try:
        summary = trainer.run()
    finally:
        trainer.close()
    if cfg.eval.after_train and summary["status"] == "completed":
        summary["eval"] = evaluate(cfg, summary["final_model"], runtime)
    return summary


def evaluate(cfg: ExperimentConfig, checkpoint: str | Path, runtime: Runtime | None = None) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on every rank; the results on rank 0 ({} elsewhere)."""
    from .data import build_eval_loader
    from .evaluation.checkpoint_checks import check_class_count
    from .evaluation.run import evaluate as run_evaluation
    from .models.build import model_from_checkpoint

    runtime = runtime or start_runtime(cfg, training=False)
    model = model_from_checkpoint(cfg.model, checkpoint, img_size=cfg.data.eval_size).to(runtime.device)
    loader = build_eval_loader(cfg.data, rank=runtime.rank, world_size=runtime.world_size)
    check_class_count(checkpoint, model.num_classes, loader.num_classes, cfg.data.val_dir)
    return run_evaluation(cfg, runtime, model, loader, str(checkpoint))
