"""Atomic file output: write under a temporary name, then rename; and file checksums."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def tmp_path(path: Path) -> Path:
    """The temporary name ``path`` is written under before the rename."""
    return path.with_name(path.name + TMP_SUFFIX)


def commit(path: Path) -> None:
    """Flush the temporary file of ``path`` to disk and rename it to ``path``."""
    tmp = tmp_path(path)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (sorted keys, indented) atomically."""
    with open(tmp_path(path), "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    commit(path)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
