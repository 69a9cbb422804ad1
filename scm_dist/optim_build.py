"""AdamW built the fast way for the device: fused kernels on CUDA, foreach elsewhere.

``build_adamw(param_groups(model, wd), lr=..., betas=..., eps=...)`` gives the same update
as ``torch.optim.AdamW`` with the same arguments (tests compare them), in one fused kernel
per step on CUDA (``fused=True``) and multi-tensor (``foreach=True``) on CPU.

Both backends use it: Accelerate prepares it, DeepSpeed gets it as ``optimizer=`` of
``deepspeed.initialize`` (its JSON ``torch_adam`` mode takes no ``fused`` flag, and
DeepSpeed's own FusedAdam needs its CUDA ops JIT-built).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

ADAMW_IMPLS = ("auto", "fused", "foreach", "loop")


def _params(groups: Iterable[Any]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for group in groups:
        out.extend(group["params"] if isinstance(group, dict) else [group])
    return out


def adamw_kind(groups: list[Any], impl: str = "auto") -> str:
    """``fused`` when every parameter is on CUDA (``auto``), else ``foreach``; or ``impl``."""
    if impl not in ADAMW_IMPLS:
        raise ValueError(f"AdamW implementation must be one of {ADAMW_IMPLS}, got {impl!r}")
    if impl != "auto":
        return impl
    params = _params(groups)
    return "fused" if params and all(p.is_cuda for p in params) else "foreach"


def build_adamw(
    groups: Iterable[Any],
    lr: float,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    impl: str = "auto",
) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` over ``groups`` (parameter groups or parameters), with the
    kernel :func:`adamw_kind` picks; ``betas`` is any pair (the config's list included)."""
    groups = list(groups)
    beta1, beta2 = betas
    kind = adamw_kind(groups, impl)
    flags = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[kind]
    return torch.optim.AdamW(groups, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, **flags)
