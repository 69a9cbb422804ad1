"""DeepSpeed's checkpoint files read without executing code.

``DeepSpeedEngine.load_checkpoint`` reads every file through its ``checkpoint_engine``,
whose default ``load`` is ``torch.load(weights_only=False)``. This engine reads them with
``weights_only=True``, allowing only the DeepSpeed classes its ZeRO optimizer files hold
as plain data (loss-scaler settings, the ZeRO stage enum, a fragment's start and size;
rebuilt without running their code), and writes through a Python file object so that a
full disk is an ``OSError(ENOSPC)``.
"""

from __future__ import annotations

from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
from deepspeed.runtime.zero.config import ZeroStageEnum
from deepspeed.utils.tensor_fragment import fragment_address

from .safe_io import load_plain, torch_save

PLAIN_DEEPSPEED_CLASSES = (LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address)


class SafeCheckpointEngine(TorchCheckpointEngine):
    """TorchCheckpointEngine with weights-only loads (see module doc)."""

    def load(self, path: str, map_location=None):
        return load_plain(path, allowed=PLAIN_DEEPSPEED_CLASSES, map_location=map_location or "cpu")

    def save(self, state_dict, path: str) -> None:
        torch_save(state_dict, path)


def use_safe_checkpoint_engine(engine) -> None:
    """Replace ``engine``'s checkpoint engine (call right after ``deepspeed.initialize``)."""
    engine.checkpoint_engine = SafeCheckpointEngine(engine._config)
