"""Accelerate backend: DDP (default) or FSDP, fp32 / bf16 / fp16 (GPU, loss scaling)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from ..config import ExperimentConfig
from ..optim_build import build_adamw
from ..runtime import Runtime
from .backend import Backend
from .state_files import load_training_state, save_training_state

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


class AccelerateBackend(Backend):
    """``Accelerator(cpu=True)`` on a CPU runtime, CUDA otherwise; on the runtime's group."""

    def __init__(self, cfg: ExperimentConfig, runtime: Runtime, grad_accum: int) -> None:
        super().__init__(cfg, runtime, grad_accum)
        kwargs = {}
        if cfg.train.sharding == "fsdp":
            from accelerate import FullyShardedDataParallelPlugin

            kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin()
        self.accelerator = Accelerator(
            cpu=runtime.device.type == "cpu", mixed_precision=MIXED_PRECISION[cfg.train.precision], **kwargs
        )
        self.check_world(self.accelerator.num_processes, self.accelerator.device)

    def prepare(
        self, model: nn.Module, groups: list[dict], lr: float, multiplier: Callable[[int], float]
    ) -> None:
        # fused on CUDA
        optimizer = build_adamw(groups, lr=lr, betas=self.cfg.optim.betas, eps=self.cfg.optim.eps)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        # not prepared: Accelerate would step it once per process
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer.optimizer, multiplier)

    def micro_step(self, sync: bool) -> AbstractContextManager:
        return nullcontext() if sync else self.accelerator.no_sync(self.model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss / self.grad_accum)

    def optimizer_step(self) -> None:
        if self.cfg.optim.grad_clip > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, directory: Path) -> None:
        # not accelerator.save_state: load_state would unpickle (see state_files.py)
        scaler = self.accelerator.scaler
        extra = {"scheduler": self.scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None}
        save_training_state(directory, self.model, self.optimizer.optimizer, extra, self.is_main)

    def load(self, directory: Path) -> None:
        extra = load_training_state(directory, self.model, self.optimizer.optimizer)
        self.scheduler.load_state_dict(extra["scheduler"])
        if self.accelerator.scaler is not None and extra.get("scaler"):
            self.accelerator.scaler.load_state_dict(extra["scaler"])

    def consolidated_state_dict(self, directory: Path) -> dict[str, torch.Tensor] | None:
        state = self.accelerator.get_state_dict(self.model)
        if not self.is_main:
            return None
        return {k: v.detach().float().cpu().clone() for k, v in state.items()}

    def close(self) -> None:
        self.accelerator.free_memory()  # Accelerate's own references to the prepared objects

    def scalar_parameters(self) -> dict[str, float]:
        model = self.accelerator.unwrap_model(self.model)
        return {
            name: float(p.detach().float().reshape(-1)[0])
            for name, p in model.named_parameters()
            if p.numel() == 1
        }
