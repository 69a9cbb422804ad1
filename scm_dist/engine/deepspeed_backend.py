"""DeepSpeed backend: ZeRO stage 0-3 from configs/deepspeed/*.json, bf16 / fp16 / fp32.

``deepspeed.initialize`` is called directly (Accelerate's DeepSpeed plugin needs the
transformers package). The JSON file gives the ZeRO settings; the
batch sizes, accumulation, precision and clipping always come from the experiment config,
and the optimizer is ours (:func:`~scm_dist.optim_build.build_adamw`, fused on CUDA), built
from the experiment config, so the two cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import deepspeed
import torch
from torch import nn

from ..config import ExperimentConfig
from ..optim_build import build_adamw
from ..runtime import Runtime
from .backend import Backend
from .safe_deepspeed import use_safe_checkpoint_engine

CHECKPOINT_TAG = "zero"


def build_deepspeed_config(cfg: ExperimentConfig, world_size: int, grad_accum: int, lr: float) -> dict:
    """The DeepSpeed JSON with the experiment's batch, precision and optimizer filled in."""
    path = Path(cfg.train.deepspeed_config)
    if not path.is_file():
        raise FileNotFoundError(
            f"train.deepspeed_config not found: {path} (see configs/deepspeed/zero{{0,1,2,3}}.json)"
        )
    ds = json.loads(path.read_text())
    micro = cfg.data.batch_size
    ds.update(
        train_micro_batch_size_per_gpu=micro,
        gradient_accumulation_steps=grad_accum,
        train_batch_size=micro * grad_accum * world_size,
        gradient_clipping=cfg.optim.grad_clip,
        bf16={"enabled": cfg.train.precision == "bf16"},
        fp16={"enabled": cfg.train.precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        zero_allow_untested_optimizer=True,  # ours: torch's AdamW (see DeepSpeedBackend.prepare)
    )
    ds.pop("optimizer", None)  # the optimizer is built from the experiment config
    ds.setdefault("steps_per_print", 10**9)
    return ds


def offloads_optimizer(ds_config: dict) -> bool:
    """Whether ZeRO keeps the optimizer state on the CPU (``offload_optimizer``)."""
    offload = ds_config.get("zero_optimization", {}).get("offload_optimizer") or {}
    return offload.get("device", "none") not in ("none", None)


class DeepSpeedBackend(Backend):
    """One DeepSpeed engine on the runtime's process group (gloo on CPU with
    DS_ACCELERATOR=cpu, NCCL on GPU): the runtime always has one for DeepSpeed."""

    def __init__(self, cfg: ExperimentConfig, runtime: Runtime, grad_accum: int) -> None:
        super().__init__(cfg, runtime, grad_accum)
        deepspeed.init_distributed(dist_backend="nccl" if runtime.device.type == "cuda" else "gloo")
        device = torch.device(deepspeed.get_accelerator().device_name(runtime.device.index))
        self.check_world(deepspeed.comm.get_world_size(), device)

    def prepare(
        self, model: nn.Module, groups: list[dict], lr: float, multiplier: Callable[[int], float]
    ) -> None:
        config = build_deepspeed_config(self.cfg, self.world_size, self.grad_accum, lr)
        self.zero_stage = config.get("zero_optimization", {}).get("stage", 0)
        # torch's AdamW handed to DeepSpeed (which steps it on its fp32 partitions): the fused
        # kernel on CUDA, where DeepSpeed's own FusedAdam would need its CUDA ops JIT-built;
        # the same update as the Accelerate backend's
        on_gpu = self.device.type == "cuda" and not offloads_optimizer(config)
        optimizer = build_adamw(
            groups,
            lr=lr,
            betas=self.cfg.optim.betas,
            eps=self.cfg.optim.eps,
            impl="fused" if on_gpu else "foreach",
        )
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            config=config,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, multiplier),
        )
        use_safe_checkpoint_engine(self.engine)  # resume reads files with weights_only=True
        self._written: set[Path] = set()
        self.input_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            self.cfg.train.precision, torch.float32
        )

    def micro_step(self, sync: bool) -> AbstractContextManager:
        return nullcontext()  # DeepSpeed tracks the accumulation boundary itself

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.engine(images.to(self.input_dtype))

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)
        self.engine.step()  # a no-op except at the accumulation boundary

    def optimizer_step(self) -> None:
        if not self.engine.was_step_applied() and self.cfg.train.precision != "fp16":
            raise RuntimeError("DeepSpeed did not apply the step at the accumulation boundary")

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, directory: Path) -> None:
        self.engine.save_checkpoint(str(directory), tag=CHECKPOINT_TAG)
        self._written.add(directory.parent / directory.name.removeprefix(".").removesuffix(".partial"))

    def load(self, directory: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(directory), tag=CHECKPOINT_TAG)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint under {directory}")

    def consolidated_state_dict(self, directory: Path) -> dict[str, torch.Tensor] | None:
        self.barrier()
        if not self.is_main:
            return None
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        # zero_to_fp32 unpickles: only ever on a checkpoint this process has just written
        if Path(directory) not in self._written:
            raise RuntimeError(f"{directory} was not written by this run; save a checkpoint first")
        state = get_fp32_state_dict_from_zero_checkpoint(str(directory), tag=CHECKPOINT_TAG)
        return {k: v.float().clone() for k, v in state.items()}

    def close(self) -> None:
        # the engine's gradient hooks live on the parameters' autograd nodes (C++), a cycle
        # the garbage collector cannot see: without destroy() the engine, and the process
        # group it holds, outlive the run
        self.engine.destroy()

    def scalar_parameters(self) -> dict[str, float]:
        named = [
            (n, p) for n, p in self.engine.module.named_parameters() if getattr(p, "ds_numel", p.numel()) == 1
        ]
        gather = (
            deepspeed.zero.GatheredParameters([p for _, p in named])
            if self.zero_stage == 3
            else nullcontext()
        )
        with gather:
            return {n: float(p.detach().float().reshape(-1)[0]) for n, p in named}
