"""Names that come from data (sample keys, class names, source paths) made safe for the file system.

A shard, an annotation file or a dataset tree is input: its names may hold ``/``, ``..``,
NUL or control characters. Nothing built from such a name is opened or written before it
passes through one of the functions below.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")
_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.=+-]")
MAX_NAME_BYTES = 200  # below the 255 of common file systems, room for an extension


class UnsafeNameError(ValueError):
    """A name from data is not a plain file name or escapes its folder (the message names it)."""


def plain_name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain file name (one path component), or None when it is."""
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "it is a relative directory"
    if _UNSAFE_CHARS.search(name):
        return "it holds a path separator or a control character"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes"
    return None


def sample_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a WebDataset sample key (a plain name without '.'), or None."""
    problem = plain_name_problem(key)
    if problem is None and "." in key:
        problem = "it holds '.' (WebDataset keys end at the first dot)"
    return problem


def check_sample_key(key: str, where: str) -> str:
    """``key`` when it is a valid sample key, else :class:`UnsafeNameError` naming it and ``where``."""
    problem = sample_key_problem(key)
    if problem:
        raise UnsafeNameError(f"{where}: sample key {key!r} is not a plain name ({problem})")
    return key


def safe_file_stem(name: str) -> str:
    """A file name made from any text: ``name`` itself when it is made of letters, digits and
    ``_.=+-`` only (and does not start with a dot), else those characters kept, the others
    replaced by ``_``, and a short hash of the original appended so distinct names stay distinct."""
    stem = _FILE_CHARS.sub("_", name)[: MAX_NAME_BYTES - 20]
    if stem == name and not name.startswith(".") and name:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{stem.lstrip('.')}_{digest}"


def contained_path(root: Path, relative: str, where: str) -> Path:
    """``root / relative`` for a relative path read from data; :class:`UnsafeNameError` when it is
    empty or absolute, or a component is '..', '.', or holds a control character. The check is
    on the text (symbolic links inside the dataset tree are the user's own and are followed)."""
    posix = PurePosixPath(relative.replace("\\", "/"))
    parts = relative.replace("\\", "/").split("/")
    if posix.is_absolute() or any(plain_name_problem(p) for p in parts):
        raise UnsafeNameError(
            f"{where}: path {relative!r} is not a plain relative path inside {root}; fix the annotation file"
        )
    return root.joinpath(*parts)
