"""The training loop, written once for every backend and launcher.

It receives ready objects (a runtime, a backend, a loader, a model) from the application
layer (``scm_dist.app``) and knows nothing about evaluation. Nothing here waits for the
device inside a step: loss and accuracy accumulate on the device and are read every
``train.log_every`` steps, and the stop flag is agreed by an asynchronous vote read one
step later (:class:`scm_dist.runtime.FlagVote`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import ExperimentConfig, config_to_dict, save_config
from ..data import TrainLoader
from ..data.device_input import HostImages
from ..files import save_atomic
from ..runtime import Runtime
from ..stop import StopFlag
from .backend import Backend
from .checkpoint import CheckpointManager, ResumeError
from .lr_resume import continue_schedule
from .optim import lr_multiplier, param_groups, scaled_lr
from .rng import rng_state, seed_everything, set_rng_state
from .run_dir import open_run
from .run_log import RunLogger

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


def num_classes(cfg: ExperimentConfig, loader: TrainLoader) -> int:
    """``model.num_classes``, or the train shards' count when 0 (they must agree)."""
    if cfg.model.num_classes and cfg.model.num_classes != loader.num_classes:
        raise ValueError(
            f"model.num_classes={cfg.model.num_classes} but the train shards "
            f"have {loader.num_classes} classes; set model.num_classes=0"
        )
    return cfg.model.num_classes or loader.num_classes


def _identity(cfg: ExperimentConfig, num_classes: int, world_size: int) -> dict[str, Any]:
    return {
        "model": cfg.model.name,
        "depth": cfg.model.depth,
        "num_classes": num_classes,
        "img_size": cfg.model.img_size,
        "engine": cfg.train.engine,
        "world_size": world_size,
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


class Meter:
    """Loss and correct predictions summed on the device; sample count and data wait on
    the host (known without asking the device). Read, summed over ranks, at log steps."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.on_device = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss sum, correct
        self.count = 0
        self.data_s = 0.0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        n = labels.numel()
        self.on_device[0] += loss.detach().double() * n
        self.on_device[1] += (logits.detach().argmax(dim=1) == labels).sum()
        self.count += n

    def totals(self, runtime: Runtime) -> tuple[float, float, float, float]:
        """(loss sum, correct, count, data wait) over all ranks: one collective, one read."""
        host = torch.tensor([self.count, self.data_s], dtype=torch.float64, device=self.device)
        loss, correct, count, data_s = runtime.sum(torch.cat([self.on_device, host])).tolist()
        return loss, correct, count, data_s


class Trainer:
    """One training run: resume, the loop, checkpoints and the final model."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        runtime: Runtime,
        backend: Backend,
        loader: TrainLoader,
        model: torch.nn.Module,
        stop: StopFlag | None = None,
    ) -> None:
        self.cfg, self.runtime, self.backend, self.loader, self.stop = cfg, runtime, backend, loader, stop
        self.accum = backend.grad_accum
        self.output_dir = Path(cfg.train.output_dir)
        self.num_classes = num_classes(cfg, loader)
        self.steps_per_epoch = loader.steps_per_epoch // self.accum
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"one epoch has {loader.steps_per_epoch} micro batches per "
                f"rank, fewer than train.grad_accum={self.accum}"
            )
        self.total_steps = cfg.train.max_steps or cfg.train.epochs * self.steps_per_epoch
        seed_everything(cfg.seed + 1 + runtime.rank)  # per-rank drop-path randomness
        self.global_batch = cfg.data.batch_size * self.accum * runtime.world_size
        self.lr = scaled_lr(cfg.optim, self.global_batch)
        backend.prepare(
            model,
            param_groups(model, cfg.optim.weight_decay),
            self.lr,
            lr_multiplier(cfg.optim, self.steps_per_epoch, self.total_steps, peak_lr=self.lr),
        )
        self.identity = _identity(cfg, self.num_classes, runtime.world_size)
        self.checkpoints = CheckpointManager(self.output_dir, cfg.train.keep_last, backend)
        self.progress = Progress()
        self.last_checkpoint: Path | None = None

    # -- resume ---------------------------------------------------------------------
    def resume(self) -> None:
        path = self.checkpoints.resolve(self.cfg.train.resume, self.cfg.train.overwrite)
        if self.runtime.broadcast_flag(path is not None) != (path is not None):
            raise ResumeError(
                f"rank 0 and rank {self.runtime.rank} disagree on whether {self.output_dir} holds "
                "a checkpoint: train.output_dir must be on a file system every node shares"
            )
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
        if self.runtime.is_main:
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
    def _next_batch(self, batches) -> tuple[HostImages, torch.Tensor]:
        # the loader must not touch the global RNG (drop path draws from it): resuming
        # re-creates its iterator at another moment than an uninterrupted run does
        with torch.random.fork_rng(devices=[]):
            return next(batches)

    def _train_step(self, batches, meter: Meter) -> None:
        backend = self.backend
        for micro in range(self.accum):
            waited = time.perf_counter()
            host_images, labels = self._next_batch(batches)
            meter.data_s += time.perf_counter() - waited
            images = host_images.to_model(backend.device)  # uint8 crosses, normalised on the device
            labels = labels.to(backend.device, non_blocking=True)
            with backend.micro_step(sync=micro == self.accum - 1):
                logits = backend.forward(images).float()
                loss = F.cross_entropy(logits, labels, label_smoothing=self.cfg.optim.label_smoothing)
                backend.backward(loss)
            meter.add(loss, logits, labels)
        backend.optimizer_step()

    def _log(self, logger: RunLogger, meter: Meter, started: float) -> float:
        loss, correct, count, data_s = meter.totals(self.runtime)
        elapsed = time.perf_counter() - started
        metrics = {
            "train/loss": loss / max(count, 1),
            "train/acc": 100 * correct / max(count, 1),
            "train/lr": self.backend.lr,
            "train/images_per_s": count / elapsed,
            "train/data_wait": data_s / self.runtime.world_size / elapsed,
            "train/epoch": self.progress.epoch,
        }
        metrics.update({f"param/{name}": value for name, value in self.backend.scalar_parameters().items()})
        logger.write(self.progress.step, metrics)
        meter.reset()
        return metrics["train/loss"]

    def run(self) -> dict[str, Any]:
        """Train to the end (or to a stop request) holding the output_dir lock; a summary."""
        lock = open_run(self.output_dir, self.runtime)
        try:
            return self._run()
        finally:
            if lock is not None:
                lock.release()

    def _run(self) -> dict[str, Any]:
        cfg, runtime = self.cfg, self.runtime
        self.resume()  # first: a refused resume leaves config.yaml as it was
        if runtime.is_main:
            save_config(cfg, self.output_dir / "config.yaml")
            log.info(
                "training %s on %d process(es), %s %s: %d steps (%d per epoch), global batch %d, lr %.3g",
                cfg.model.name,
                runtime.world_size,
                cfg.train.engine,
                cfg.train.precision,
                self.total_steps,
                self.steps_per_epoch,
                self.global_batch,
                self.lr,
            )
        logger = RunLogger(self.output_dir, runtime.is_main, self.total_steps, self.progress.step)
        meter, vote = Meter(runtime.device), runtime.vote()
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
                if vote.poll(self.stop is not None and self.stop.is_set()):
                    status = "preempted"
                    break
                if self.progress.step >= self.total_steps:
                    break
            else:
                self.progress.epoch += 1
        vote.close()
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

    def close(self) -> None:
        """Release the backend's library state; the trainer is not used afterwards."""
        self.backend.close()

    def write_final_model(self) -> Path:
        """Consolidate the last checkpoint into one fp32 file (all SCM parameters kept)."""
        if self.last_checkpoint is None:
            raise RuntimeError("write_final_model consolidates the last checkpoint: call it after run()")
        state = self.backend.consolidated_state_dict(self.last_checkpoint)
        path = self.output_dir / FINAL_MODEL
        if self.runtime.is_main:
            save_atomic(
                {
                    "state_dict": state,
                    "identity": self.identity,
                    "config": config_to_dict(self.cfg),
                    "step": self.progress.step,
                },
                path,
            )
        self.runtime.barrier()
        return path
