"""Small helpers shared by the sources: directory checks and image listing."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


class LayoutError(ValueError):
    """The dataset on disk does not have the layout or annotations the source expects."""


def require_dir(path: Path, expected: str) -> Path:
    """Return ``path`` if it is a directory, else raise a :class:`LayoutError` saying what was expected."""
    if not path.is_dir():
        raise LayoutError(f"{path} is not a directory; expected {expected}")
    return path


def require_file(path: Path, expected: str) -> Path:
    """Return ``path`` if it is a file, else raise a :class:`LayoutError` saying what was expected."""
    if not path.is_file():
        raise LayoutError(f"{path} is not a file; expected {expected}")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def sorted_subdirs(folder: Path) -> list[Path]:
    """Subdirectories of ``folder``, sorted by name (hidden ones ignored)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def check_no_orphans(annotated: Iterable[str], present: set[str], annotation_path: Path, root: Path) -> None:
    """Raise when annotations name images that are not on disk (lists the first few)."""
    missing = sorted(set(annotated) - present)
    if missing:
        raise LayoutError(
            f"{annotation_path} annotates {len(missing)} image(s) that do not exist under {root}, "
            f"e.g. {missing[:5]}; check --root and that the annotations belong to this split"
        )
