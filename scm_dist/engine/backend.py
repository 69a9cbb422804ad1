"""The one small interface the training loop sees, whatever runs underneath.

The loop is written once against :class:`Backend`; Accelerate (DDP / FSDP) and
DeepSpeed (ZeRO 0-3) implement it. Both run on the process group and device of the
:class:`~scm_dist.runtime.Runtime` they are given (they reuse its group), and every
collective of ours goes through that runtime. Nothing here knows about SCM: the SCM
scalars are ordinary parameters of the same model, optimizer and partitioning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ..config import ExperimentConfig
from ..runtime import Runtime, WorldSizeError


class Backend(ABC):
    """Distributed model, optimizer and schedule behind one API."""

    scheduler: LambdaLR  # the per-step LR schedule, built by :meth:`prepare`

    def __init__(self, cfg: ExperimentConfig, runtime: Runtime, grad_accum: int) -> None:
        if cfg.train.precision == "fp16" and runtime.device.type != "cuda":
            raise ValueError(
                "train.precision=fp16 needs a GPU (loss-scaled fp16 has no CPU "
                "kernels worth using); use train.precision=bf16 on CPU"
            )
        self.cfg = cfg
        self.runtime = runtime
        self.grad_accum = grad_accum

    @property
    def rank(self) -> int:
        return self.runtime.rank

    @property
    def world_size(self) -> int:
        return self.runtime.world_size

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def is_main(self) -> bool:
        return self.runtime.is_main

    def barrier(self) -> None:
        self.runtime.barrier()

    def check_world(self, seen: int, device: torch.device) -> None:
        """Fail fast when the library's world or device is not the runtime's (a process
        that trains alone while the launcher started several: see the README, One machine)."""
        if seen != self.world_size:
            raise WorldSizeError(
                f"the launcher started {self.world_size} processes but the backend sees a world of "
                f"{seen} ({type(self).__name__}): each process would train alone. On a CPU host launch with "
                "`accelerate launch --config_file configs/accelerate/cpu_2proc.yaml` or torchrun."
            )
        # on CPU Accelerate names its device cpu:<rank>; every CPU device is the same memory
        if device.type != self.device.type or (device.type == "cuda" and device.index != self.device.index):
            raise WorldSizeError(f"{type(self).__name__} runs on {device}, the runtime on {self.device}")

    @abstractmethod
    def prepare(
        self, model: nn.Module, groups: list[dict], lr: float, multiplier: Callable[[int], float]
    ) -> None:
        """Wrap the model, build AdamW over ``groups`` and the LambdaLR schedule."""

    @abstractmethod
    def micro_step(self, sync: bool) -> AbstractContextManager:
        """Context for one micro batch's forward and backward; ``sync`` on the last one."""

    @abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Training logits of ``images``, which are on :attr:`device` already (mixed precision
        applied as configured)."""

    @abstractmethod
    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of one micro batch's loss."""

    @abstractmethod
    def optimizer_step(self) -> None:
        """Clip, apply the accumulated step, zero the gradients, advance the schedule."""

    @property
    @abstractmethod
    def lr(self) -> float:
        """Current learning rate (first parameter group)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write model, optimizer, schedule and loss-scaler state (collective)."""

    @abstractmethod
    def load(self, directory: Path) -> None:
        """Restore what :meth:`save` wrote (collective)."""

    @abstractmethod
    def consolidated_state_dict(self, directory: Path) -> dict[str, torch.Tensor] | None:
        """The full fp32 model state dict on rank 0 (None elsewhere); ``directory`` is
        the checkpoint :meth:`save` just wrote (ZeRO shards are consolidated from it)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the library keeps beyond this object (hooks, process-group references);
        the backend is not used afterwards."""

    @abstractmethod
    def scalar_parameters(self) -> dict[str, float]:
        """Every one-element parameter by name (e.g. SCM's lambda and t), on every rank."""


def make_backend(cfg: ExperimentConfig, runtime: Runtime, grad_accum: int) -> Backend:
    """The backend named by ``train.engine`` (a choice checked when the config loads)."""
    if cfg.train.engine == "deepspeed":
        from .deepspeed_backend import DeepSpeedBackend

        return DeepSpeedBackend(cfg, runtime, grad_accum)
    from .accelerate_backend import AccelerateBackend

    return AccelerateBackend(cfg, runtime, grad_accum)
