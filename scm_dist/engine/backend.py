"""The one small interface the training loop sees, whatever runs underneath.

The loop is written once against :class:`Backend`; Accelerate (DDP / FSDP) and
DeepSpeed (ZeRO 0-3) implement it. Nothing here knows about SCM: the SCM scalars are
ordinary parameters of the same model, optimizer and partitioning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import torch
from torch import nn

from ..config import ExperimentConfig

PRECISIONS = ("fp32", "bf16", "fp16")


class Backend(ABC):
    """Distributed model, optimizer and schedule behind one API."""

    rank: int
    world_size: int
    device: torch.device

    def __init__(self, cfg: ExperimentConfig, grad_accum: int) -> None:
        if cfg.train.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {PRECISIONS}, got {cfg.train.precision!r}")
        if cfg.train.precision == "fp16" and not torch.cuda.is_available():
            raise ValueError(
                "train.precision=fp16 needs a GPU (loss-scaled fp16 has no CPU "
                "kernels worth using); use train.precision=bf16 on CPU"
            )
        self.cfg = cfg
        self.grad_accum = grad_accum

    @property
    def is_main(self) -> bool:
        return self.rank == 0

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
        """Training logits (mixed precision applied as configured)."""

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
    def scalar_parameters(self) -> dict[str, float]:
        """Every one-element parameter by name (e.g. SCM's lambda and t), on every rank."""

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            torch.distributed.all_reduce(tensor)
        return tensor

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()


def make_backend(cfg: ExperimentConfig, grad_accum: int) -> Backend:
    """The backend named by ``train.engine``."""
    if cfg.train.engine == "accelerate":
        from .accelerate_backend import AccelerateBackend

        return AccelerateBackend(cfg, grad_accum)
    if cfg.train.engine == "deepspeed":
        from .deepspeed_backend import DeepSpeedBackend

        return DeepSpeedBackend(cfg, grad_accum)
    raise ValueError(f"train.engine must be accelerate or deepspeed, got {cfg.train.engine!r}")
