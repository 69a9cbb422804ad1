"""Sweep files -> one list of config overrides per array task.

Two forms are accepted::

    optim.lr: [1.0e-4, 3.0e-4]      # a grid: every combination of the listed values
    seed: [0, 1]

    - {optim.lr: 1.0e-4, seed: 0}   # explicit list of override sets
    - {optim.lr: 3.0e-4, seed: 1}
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from scm_dist.config import ConfigError


@dataclass(frozen=True)
class SweepPoint:
    """One array task: its index, a directory-safe tag and its dotted overrides."""

    index: int
    values: dict

    @property
    def tag(self) -> str:
        parts = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in self.values.items()]
        return re.sub(r"[^A-Za-z0-9_.=+-]", "_", "_".join([str(self.index), *parts]))

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={json.dumps(value)}" for key, value in self.values.items()]


def load_sweep(path: str | Path) -> list[SweepPoint]:
    """Read a sweep file; errors say which form was expected."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    data = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and data:
        keys = list(data)
        columns = [v if isinstance(v, list) else [v] for v in data.values()]
        if any(not column for column in columns):
            raise ConfigError(f"{path}: every swept key needs at least one value")
        sets = [dict(zip(keys, combo)) for combo in itertools.product(*columns)]
    elif isinstance(data, list) and data and all(isinstance(item, dict) and item for item in data):
        sets = data
    else:
        raise ConfigError(
            f"{path}: a sweep is either a mapping of dotted keys to value lists "
            "({optim.lr: [1e-4, 3e-4]}) or a list of override mappings"
        )
    return [SweepPoint(i, {str(k): v for k, v in values.items()}) for i, values in enumerate(sets)]
