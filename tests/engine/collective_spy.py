"""A wrapper around torch.distributed's collectives, installed in a test process.

Every collective call is checked as it happens: a tensor that is not on the expected
device fails the call (NCCL refuses CPU tensors; gloo would let them through silently),
and a call made from scm_dist code must come from the runtime (scm_dist/runtime.py),
the one place whose collectives place their tensors on the runtime's device. Calls made
inside the libraries (DDP, Accelerate, DeepSpeed) are checked for the device only.
"""

from __future__ import annotations

import functools
import sys
from collections import Counter
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d

import scm_dist

PACKAGE = Path(scm_dist.__file__).resolve().parent
RUNTIME = PACKAGE / "runtime.py"
TORCH_DIST = Path(dist.__file__).resolve().parent
COLLECTIVES = (
    "all_reduce",
    "broadcast",
    "barrier",
    "reduce",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter_tensor",
    "all_to_all_single",
    "gather",
    "scatter",
)


class CollectiveSpy:
    """Counts the collectives called from scm_dist (by file:function) and checks each one."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.from_scm_dist: Counter[str] = Counter()
        self.tensors_checked = 0

    def install(self) -> CollectiveSpy:
        for name in COLLECTIVES:
            original = getattr(c10d, name)
            wrapped = self._wrap(name, original)
            setattr(c10d, name, wrapped)
            setattr(dist, name, wrapped)
        return self

    def _wrap(self, name: str, original):
        @functools.wraps(original)
        def checked(*args, **kwargs):
            for value in (*args, *kwargs.values()):
                for tensor in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(tensor, torch.Tensor):
                        assert tensor.device == self.device, (
                            f"{name} on a {tensor.device} tensor; the runtime's device is {self.device}"
                        )
                        self.tensors_checked += 1
            caller = _caller()
            if caller.is_relative_to(PACKAGE):
                assert caller == RUNTIME, f"{caller} calls torch.distributed.{name} around the runtime"
                self.from_scm_dist[f"{caller.name}:{name}"] += 1
            return original(*args, **kwargs)

        return checked


def _caller() -> Path:
    """The file of the first frame outside torch.distributed and this module."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if not (path.is_relative_to(TORCH_DIST) or path == Path(__file__).resolve()):
            return path
        frame = frame.f_back
    return Path("?")
