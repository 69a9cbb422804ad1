"""The training loop, written once for every backend and launcher."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import ExperimentConfig, config_to_dict, save_config
from ..data import build_train_loader
from ..export import save_atomic
from ..models import create_wsol_model
from .backend import Backend, make_backend
from .checkpoint import CheckpointManager, ResumeError
from .distributed import LaunchEnv, check_world_size, rng_state, seed_everything, set_rng_state
from .lr_resume import continue_schedule
from .optim import lr_multiplier, param_groups, scaled_lr
from .run_dir import open_run
from .run_log import RunLogger
from .stop import StopRequest

log = logging.getLogger("scm_dist.train")
FINAL_MODEL = "model_final.pt"


@dataclass
class Progress:
    """Where training stands: optimizer steps done and the current epoch."""

    step: int = 0
    epoch: int = 0


def grad_accumulation(cfg: ExperimentConfig, world_size: int) -> int:
    """``train.grad_accum``, or derived from ``train.global_batch_size`` (must divide)."""
    per_step = cfg.data.batch_size * world_size
    if cfg.data.batch_size < 1:
        raise ValueError(f"data.batch_size must be positive, got {cfg.data.batch_size}")
    if cfg.train.global_batch_size <= 0:
        return max(1, cfg.train.grad_accum)
    if cfg.train.global_batch_size % per_step:
        raise ValueError(
            f"train.global_batch_size={cfg.train.global_batch_size} is not divisible by "
            f"data.batch_size x world size = {cfg.data.batch_size} x {world_size} = {per_step}; "
            f"choose a multiple of {per_step} or change data.batch_size"
        )
    return cfg.train.global_batch_size // per_step


def check_sizes(cfg: ExperimentConfig) -> None:
    if cfg.model.img_size != cfg.data.crop_size:
        raise ValueError(
            f"model.img_size={cfg.model.img_size} must equal data.crop_size="
            f"{cfg.data.crop_size} (the training crop is the model's input)"
        )
    if cfg.data.resize_size < cfg.data.crop_size:
        raise ValueError(
            f"data.resize_size={cfg.data.resize_size} is smaller than data.crop_size={cfg.data.crop_size}"
        )


def build_model(
    cfg: ExperimentConfig, num_classes: int, img_size: int | None = None, load_pretrained: bool = True
) -> torch.nn.Module:
    """The configured model (at ``img_size``, default ``model.img_size``), from
    ``model.pretrained`` when it names a file and ``load_pretrained`` is set."""
    kwargs: dict[str, Any] = dict(
        num_classes=num_classes,
        img_size=img_size or cfg.model.img_size,
        drop_path_rate=cfg.model.drop_path_rate,
        attn_impl=cfg.model.attn_impl,
        scm_impl=cfg.model.scm_impl,
    )
    if cfg.model.depth:
        kwargs["depth"] = cfg.model.depth
    if load_pretrained and cfg.model.pretrained:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=cfg.model.pretrained))
    return create_wsol_model(cfg.model.name, **kwargs)


def _identity(cfg: ExperimentConfig, num_classes: int, backend: Backend) -> dict[str, Any]:
    return {
        "model": cfg.model.name,
        "depth": cfg.model.depth,
        "num_classes": num_classes,
        "img_size": cfg.model.img_size,
        "engine": cfg.train.engine,
        "world_size": backend.world_size,
        "deepspeed_config": cfg.train.deepspeed_config if cfg.train.engine == "deepspeed" else None,
        "sharding": cfg.train.sharding,
    }


def _check_resumable(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    for key in ("model", "depth", "num_classes", "img_size", "engine"):
        if saved[key] != current[key]:
            raise ResumeError(
                f"{path} was written for {key}={saved[key]!r} but this run has "
                f"{key}={current[key]!r}; resume with the same config, set "
                "train.resume=none or use another train.output_dir"
            )
    if saved["world_size"] != current["world_size"]:
        sharded = current["engine"] == "deepspeed" or current["sharding"] == "fsdp"
        if sharded:
            raise ResumeError(
                f"{path} holds optimizer state sharded over {saved['world_size']} processes; "
                f"this run has {current['world_size']}. Resume with {saved['world_size']} "
                "processes, or start from its consolidated model_final.pt via model.pretrained"
            )
        log.warning(
            "resuming a %d-process checkpoint on %d processes: weights and optimizer "
            "are exact, the data position is not",
            saved["world_size"],
            current["world_size"],
        )


class Trainer:
    """One training run: set-up, resume, the loop, checkpoints and the final model."""

    def __init__(self, cfg: ExperimentConfig, stop: StopRequest | None = None) -> None:
        check_sizes(cfg)
        launch = LaunchEnv.from_environment()
        self.cfg, self.stop = cfg, stop
        self.accum = grad_accumulation(cfg, launch.world_size)
        self.backend = backend = make_backend(cfg, self.accum)
        check_world_size(backend.world_size, launch, cfg.train.expected_world_size)
        self.output_dir = Path(cfg.train.output_dir)
        seed_everything(cfg.seed)
        self.loader = build_train_loader(
            cfg.data, rank=backend.rank, world_size=backend.world_size, seed=cfg.seed
        )
        self.num_classes = cfg.model.num_classes or self.loader.num_classes
        if cfg.model.num_classes and cfg.model.num_classes != self.loader.num_classes:
            raise ValueError(
                f"model.num_classes={cfg.model.num_classes} but the train shards "
                f"have {self.loader.num_classes} classes; set model.num_classes=0"
            )
        self.steps_per_epoch = self.loader.steps_per_epoch // self.accum
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"one epoch has {self.loader.steps_per_epoch} micro batches per "
                f"rank, fewer than train.grad_accum={self.accum}"
            )
        self.total_steps = cfg.train.max_steps or cfg.train.epochs * self.steps_per_epoch
        model = build_model(cfg, self.num_classes)  # same seed: same init on every rank
        seed_everything(cfg.seed + 1 + backend.rank)  # per-rank drop-path randomness
        global_batch = cfg.data.batch_size * self.accum * backend.world_size
        self.lr = scaled_lr(cfg.optim, global_batch)
        backend.prepare(
            model,
            param_groups(model, cfg.optim.weight_decay),
            self.lr,
            lr_multiplier(cfg.optim, self.steps_per_epoch, self.total_steps),
        )
        self.global_batch = global_batch
        self.identity = _identity(cfg, self.num_classes, backend)
        self.checkpoints = CheckpointManager(self.output_dir, cfg.train.keep_last, backend)
        self.progress = Progress()
        self.last_checkpoint: Path | None = None

    # -- resume ---------------------------------------------------------------------
    def resume(self) -> None:
        path = self.checkpoints.resolve(self.cfg.train.resume, self.cfg.train.overwrite)
        if path is None:
            return
        with self.checkpoints.reading(path):
            saved = self.checkpoints.read_trainer_state(path)
        _check_resumable(saved["identity"], self.identity, path)
        with self.checkpoints.reading(path):
            self.backend.load(path)
            rank_state = self.checkpoints.read_rank_state(path)
        continue_schedule(self.backend.scheduler, self.lr, saved.get("peak_lr"), path, saved["step"])
        self.loader.load_state_dict(rank_state["data"])
        self.progress = Progress(step=saved["step"], epoch=saved["epoch"])
        set_rng_state(rank_state["rng"])  # last: nothing above may consume randomness after
        self.last_checkpoint = path
        if self.backend.is_main:
            log.info("resumed from %s at step %d (epoch %d)", path, saved["step"], saved["epoch"])

    def save_checkpoint(self) -> Path:
        trainer_state = {
            "step": self.progress.step,
            "epoch": self.progress.epoch,
            "identity": self.identity,
            "peak_lr": self.lr,
            "config": config_to_dict(self.cfg),
        }
        rank_state = {"rng": rng_state(), "data": self.loader.state_dict()}
        self.last_checkpoint = self.checkpoints.save(self.progress.step, trainer_state, rank_state)
        return self.last_checkpoint

    # -- the loop ---------------------------------------------------------------------
    def _next_batch(self, batches) -> tuple[torch.Tensor, torch.Tensor]:
        # the loader must not touch the global RNG (drop path draws from it): resuming
        # re-creates its iterator at another moment than an uninterrupted run does
        with torch.random.fork_rng(devices=[]):
            return next(batches)

    def _stop_requested(self) -> bool:
        if self.stop is None:
            return False
        flag = torch.tensor([1.0 if self.stop.is_set() else 0.0])
        return bool(self.backend.all_reduce_sum(flag).item() > 0)

    def _train_step(self, batches, meter: dict[str, float]) -> None:
        backend = self.backend
        for micro in range(self.accum):
            waited = time.perf_counter()
            images, labels = self._next_batch(batches)
            meter["data_s"] += time.perf_counter() - waited
            labels = labels.to(backend.device)
            with backend.micro_step(sync=micro == self.accum - 1):
                logits = backend.forward(images).float()
                loss = F.cross_entropy(logits, labels, label_smoothing=self.cfg.optim.label_smoothing)
                backend.backward(loss)
            meter["loss"] += loss.item() * labels.numel()
            meter["correct"] += (logits.argmax(dim=1) == labels).sum().item()
            meter["count"] += labels.numel()
        backend.optimizer_step()

    def _log(self, logger: RunLogger, meter: dict[str, float], started: float) -> float:
        totals = self.backend.all_reduce_sum(
            torch.tensor(
                [meter["loss"], meter["correct"], meter["count"], meter["data_s"]], dtype=torch.float64
            )
        )
        loss, correct, count, data_s = totals.tolist()
        elapsed = time.perf_counter() - started
        metrics = {
            "train/loss": loss / max(count, 1),
            "train/acc": 100 * correct / max(count, 1),
            "train/lr": self.backend.lr,
            "train/images_per_s": count / elapsed,
            "train/data_wait": data_s / self.backend.world_size / elapsed,
            "train/epoch": self.progress.epoch,
        }
        metrics.update({f"param/{name}": value for name, value in self.backend.scalar_parameters().items()})
        logger.write(self.progress.step, metrics)
        meter.update(loss=0.0, correct=0.0, count=0.0, data_s=0.0)
        return metrics["train/loss"]

    def run(self) -> dict[str, Any]:
        """Train to the end (or to a stop request) holding the output_dir lock; a summary."""
        lock = open_run(self.output_dir, self.backend)
        try:
            return self._run()
        finally:
            if lock is not None:
                lock.release()

    def _run(self) -> dict[str, Any]:
        cfg, backend = self.cfg, self.backend
        self.resume()  # first: a refused resume leaves config.yaml as it was
        if backend.is_main:
            save_config(cfg, self.output_dir / "config.yaml")
            log.info(
                "training %s on %d process(es), %s %s: %d steps (%d per epoch), global batch %d, lr %.3g",
                cfg.model.name,
                backend.world_size,
                cfg.train.engine,
                cfg.train.precision,
                self.total_steps,
                self.steps_per_epoch,
                self.global_batch,
                self.lr,
            )
        logger = RunLogger(self.output_dir, backend.is_main, self.total_steps, self.progress.step)
        meter = dict(loss=0.0, correct=0.0, count=0.0, data_s=0.0)
        status, last_loss, started = "completed", float("nan"), time.perf_counter()
        saved_at = -1  # a run always ends on a checkpoint it wrote itself (see write_final_model)
        while self.progress.step < self.total_steps and status == "completed":
            self.loader.set_epoch(self.progress.epoch)
            batches = iter(self.loader)
            first = self.loader.state_dict()["batches"] // self.accum
            for _ in range(first, self.steps_per_epoch):
                self._train_step(batches, meter)
                self.progress.step += 1
                logger.advance()
                if self.progress.step % cfg.train.log_every == 0:
                    last_loss = self._log(logger, meter, started)
                    started = time.perf_counter()
                if self.progress.step % cfg.train.checkpoint_every == 0:
                    self.save_checkpoint()
                    saved_at = self.progress.step
                if self._stop_requested():
                    status = "preempted"
                    break
                if self.progress.step >= self.total_steps:
                    break
            else:
                self.progress.epoch += 1
        if saved_at != self.progress.step:
            self.save_checkpoint()
        logger.close()
        summary = {
            "status": status,
            "step": self.progress.step,
            "epoch": self.progress.epoch,
            "total_steps": self.total_steps,
            "checkpoint": str(self.last_checkpoint),
            "last_logged_loss": last_loss,
            "skipped_corrupt": self.loader.skipped_corrupt,
        }
        if status == "completed":
            summary["final_model"] = str(self.write_final_model())
        return summary

    def write_final_model(self) -> Path:
        """Consolidate the last checkpoint into one fp32 file (all SCM parameters kept)."""
        state = self.backend.consolidated_state_dict(self.last_checkpoint)
        path = self.output_dir / FINAL_MODEL
        if self.backend.is_main:
            save_atomic(
                {
                    "state_dict": state,
                    "identity": self.identity,
                    "config": config_to_dict(self.cfg),
                    "step": self.progress.step,
                },
                path,
            )
        self.backend.barrier()
        return path


def train(cfg: ExperimentConfig, stop: StopRequest | None = None) -> dict[str, Any]:
    """Train as configured (resuming from ``train.output_dir``), then evaluate if asked."""
    trainer = Trainer(cfg, stop)
    summary = trainer.run()
    if cfg.eval.after_train and summary["status"] == "completed":
        from ..evaluation.run import evaluate

        summary["eval"] = evaluate(cfg, summary["final_model"])
    return summary
