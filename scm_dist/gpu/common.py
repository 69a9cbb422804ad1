"""What the GPU check's steps share: sizes of the two modes, the check's state, paths."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent.parent
BASE_CONFIG = REPO / "configs" / "experiments" / "synthetic_scm.yaml"
ZERO2 = REPO / "configs" / "deepspeed" / "zero2.json"
PACKAGES = ("torch", "torchvision", "timm", "accelerate", "deepspeed", "webdataset", "numba", "cv2", "numpy")


@dataclass(frozen=True)
class Sizes:
    """Everything the two modes size differently."""

    size: str  # model size: small | tiny
    depth: int  # 0: the model's own (12)
    img: int
    batch: int
    warmup: int
    timed: int
    compile_backend: str
    matmul: int  # side of the square bf16 matmul that measures the peak
    correctness_batch: int
    engine_images: tuple[int, int]  # synthetic train, val
    engine_img: int
    engine_batch: int
    engine_steps: int  # per launch (trained, then resumed for as many more)
    loader_images: int
    loader_batch: int
    loader_workers: int


FULL = Sizes(
    size="small",
    depth=0,
    img=224,
    batch=256,
    warmup=3,
    timed=10,
    compile_backend="inductor",
    matmul=8192,
    correctness_batch=4,
    engine_images=(1024, 1024),
    engine_img=224,
    engine_batch=64,
    engine_steps=4,
    loader_images=4096,
    loader_batch=256,
    loader_workers=os.cpu_count() or 1,
)
QUICK = Sizes(
    size="tiny",
    depth=1,
    img=32,
    batch=4,
    warmup=1,
    timed=2,
    compile_backend="aot_eager",
    matmul=256,
    correctness_batch=2,
    engine_images=(64, 16),
    engine_img=32,
    engine_batch=8,
    engine_steps=2,
    loader_images=16,
    loader_batch=8,
    loader_workers=1,
)


@dataclass
class Check:
    """State shared by the steps."""

    sizes: Sizes
    device: torch.device
    workdir: Path
    deadline: float
    quick: bool
    results: dict[str, Any] = field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def wsol_model(name: str, sizes: Sizes, num_classes: int = 1000, **kwargs) -> torch.nn.Module:
    from scm_dist.models import create_wsol_model

    extra = {"depth": sizes.depth} if sizes.depth else {}
    return create_wsol_model(
        f"deit_{name}_{sizes.size}_patch16_224",
        num_classes=num_classes,
        img_size=sizes.img,
        **extra,
        **kwargs,
    )
