"""Rank-0 training log: a progress bar, readable lines, JSONL and TensorBoard."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..files import write_text_atomic

log = logging.getLogger("scm_dist.train")


def drop_records_after(path: Path, step: int) -> None:
    """Keep the records of ``path`` up to ``step`` (a resumed run writes the later steps
    again) and drop a line cut short by a kill; rewritten atomically."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    write_text_atomic(path, "".join(kept))


class RunLogger:
    """Writes ``metrics.jsonl`` and ``tensorboard/`` in the output dir (rank 0 only)."""

    def __init__(self, output_dir: str | Path, enabled: bool, total_steps: int, start_step: int) -> None:
        self.enabled = enabled
        self.bar = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        drop_records_after(output_dir / "metrics.jsonl", start_step)
        self.jsonl = open(output_dir / "metrics.jsonl", "a", buffering=1)
        self.tensorboard = SummaryWriter(str(output_dir / "tensorboard"), purge_step=start_step + 1)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": round(time.time(), 3), **metrics}
        self.jsonl.write(json.dumps(record) + "\n")
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.tensorboard.add_scalar(key, value, step)
        assert self.bar is not None  # set in __init__ when enabled
        self.bar.set_postfix(
            loss=f"{metrics.get('train/loss', 0):.4f}",
            acc=f"{metrics.get('train/acc', 0):.1f}",
            ips=f"{metrics.get('train/images_per_s', 0):.0f}",
        )
        tqdm.write(
            " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in record.items()
                if k != "time"
            ),
            file=sys.stderr,
        )

    def close(self) -> None:
        if self.enabled:
            assert self.bar is not None  # set in __init__ when enabled
            self.bar.close()
            self.jsonl.close()
            self.tensorboard.close()
