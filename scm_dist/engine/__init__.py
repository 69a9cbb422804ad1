"""Training engine: one loop over an Accelerate or DeepSpeed backend."""

from .checkpoint import ResumeError
from .distributed import WorldSizeError
from .loop import FINAL_MODEL, Trainer, train
from .stop import StopRequest

__all__ = ["FINAL_MODEL", "ResumeError", "StopRequest", "Trainer", "WorldSizeError", "train"]
