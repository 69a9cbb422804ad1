"""TS-CAM and SCM on DeiT, registered in timm on import."""

from .attention import ATTENTION_IMPLS, ClassTokenAttention
from .functional import minmax
from .registry import MODEL_NAMES, create_wsol_model
from .scm import (
    SCM_IMPLS,
    SpatialCalibration,
    grid_laplacian,
    newton_schulz_apply_transpose,
    newton_schulz_inverse,
)
from .weights import CheckpointMismatchError, convert_checkpoint
from .wsol import DeiTWSOL, WSOLOutput

__all__ = [
    "ATTENTION_IMPLS",
    "CheckpointMismatchError",
    "ClassTokenAttention",
    "DeiTWSOL",
    "MODEL_NAMES",
    "SCM_IMPLS",
    "SpatialCalibration",
    "WSOLOutput",
    "convert_checkpoint",
    "create_wsol_model",
    "grid_laplacian",
    "minmax",
    "newton_schulz_apply_transpose",
    "newton_schulz_inverse",
]
