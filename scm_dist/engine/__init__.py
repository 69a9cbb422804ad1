"""Training engine: one loop over an Accelerate or DeepSpeed backend, given ready objects."""

from .backend import Backend, make_backend
from .checkpoint import ResumeError
from .loop import FINAL_MODEL, Trainer, check_sizes, grad_accumulation, num_classes
from .rng import seed_everything

__all__ = [
    "FINAL_MODEL",
    "Backend",
    "ResumeError",
    "Trainer",
    "check_sizes",
    "grad_accumulation",
    "make_backend",
    "num_classes",
    "seed_everything",
]
