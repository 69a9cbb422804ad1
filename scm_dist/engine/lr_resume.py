"""After a resume the schedule continues with this run's peak LR, and says so when it changed.

LambdaLR's saved state holds the checkpoint's peak LR (``base_lrs``) and the optimizer's
groups hold its last LR; loading both would silently keep training with the old LR while
the log and config.yaml show the new one. The multiplier (warm-up, decay) is never saved:
it always comes from this run's config.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from torch.optim.lr_scheduler import LambdaLR

log = logging.getLogger("scm_dist.train")


def continue_schedule(
    scheduler: LambdaLR, peak_lr: float, saved_peak_lr: float | None, checkpoint: Path, step: int
) -> float:
    """Set the peak LR to ``peak_lr`` at the scheduler's position; return the current LR."""
    scheduler.base_lrs = [peak_lr] * len(scheduler.base_lrs)
    lrs = [peak_lr * multiplier(scheduler.last_epoch) for multiplier in scheduler.lr_lambdas]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
        group["initial_lr"] = peak_lr
    scheduler._last_lr = [*lrs]  # what get_last_lr() (and the log) report until the next step
    if saved_peak_lr is not None and not math.isclose(saved_peak_lr, peak_lr, rel_tol=1e-9):
        log.warning(
            "%s was trained with peak LR %.6g; this run continues from step %d with peak LR %.6g "
            "(optim.lr, optim.lr_scaling or the global batch changed): the new schedule applies, "
            "LR now %.6g",
            checkpoint,
            saved_peak_lr,
            step,
            peak_lr,
            lrs[0],
        )
    return lrs[0]
