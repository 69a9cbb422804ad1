"""Real annotation metadata shipped with the package, for the benchmarks and tests.

``data_shards/reference/`` holds (xz-compressed, see its README.md for the source):
the wsolevaluation metadata of ImageNet-1K val (50,000 images: ids, class indices, real
sizes, every box) and of CUB-200-2011 test (5,794 images), and the 1000 ImageNet WordNet
ids in class-index order. The readers and the ``convert`` command take plain files, so each
set is unpacked once into a cache folder (``$SCM_DIST_CACHE``, else
``$XDG_CACHE_HOME/scm-dist``, else ``~/.cache/scm-dist``), named by the content hash of what
is shipped, and written atomically (a temporary folder renamed into place).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

REFERENCE = Path(__file__).with_name("reference")
WSOL_FILES = ("image_ids", "class_labels", "image_sizes", "localization")


def cache_root() -> Path:
    if os.environ.get("SCM_DIST_CACHE"):
        return Path(os.environ["SCM_DIST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scm-dist"


def _read(name: str) -> str:
    return lzma.decompress((REFERENCE / f"{name}.txt.xz").read_bytes()).decode()


def _unpacked(name: str, sources: tuple[str, ...], build: Callable[[Path], None]) -> Path:
    """The folder ``build`` fills from the shipped ``sources``; built once per content."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update((REFERENCE / f"{source}.txt.xz").read_bytes())
    target = cache_root() / "reference" / f"{name}-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        build(staging)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():  # not another process that won the race: a real error
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _wsol_folder(prefix: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        for name in WSOL_FILES:
            (folder / f"{name}.txt").write_text(_read(f"{prefix}_{name}"))

    return build


def imagenet_val_metadata() -> Path:
    """wsolevaluation ``ILSVRC/test`` folder: the ImageNet-1K validation set."""
    return _unpacked("ilsvrc_val", tuple(f"ilsvrc_val_{n}" for n in WSOL_FILES), _wsol_folder("ilsvrc_val"))


def cub_test_metadata() -> Path:
    """wsolevaluation ``CUB/test`` folder: the CUB-200-2011 test set."""
    return _unpacked("cub_test", tuple(f"cub_test_{n}" for n in WSOL_FILES), _wsol_folder("cub_test"))


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1K WordNet ids; class index = position (sorted order)."""
    return _read("ilsvrc_wnids").split()


def _write_val_folder_txt(folder: Path) -> None:
    meta = imagenet_val_metadata()
    wnids = imagenet_wnids()
    labels = dict(line.split(",") for line in (meta / "class_labels.txt").read_text().splitlines())
    boxes: dict[str, list[str]] = {}
    for line in (meta / "localization.txt").read_text().splitlines():
        image_id, *values = line.split(",")
        boxes.setdefault(image_id, []).extend(values)
    rows = (
        f"{wnids[int(labels[i])]}/{i.rsplit('/', 1)[-1]} {labels[i]} {' '.join(boxes[i])}"
        for i in (meta / "image_ids.txt").read_text().splitlines()
    )
    (folder / "val_folder_new.txt").write_text("\n".join(rows) + "\n")


def imagenet_val_folder_txt() -> Path:
    """``val_folder_new.txt`` (``wnid/<file> label x0 y0 x1 y1 [...]``), written from the
    ImageNet val metadata and the wnid list: the class list ``convert imagenet --classes``
    reads."""
    sources = (*(f"ilsvrc_val_{n}" for n in WSOL_FILES), "ilsvrc_wnids")
    return _unpacked("ilsvrc_val_folder", sources, _write_val_folder_txt) / "val_folder_new.txt"
