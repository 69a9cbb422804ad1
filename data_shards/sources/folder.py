"""An image folder: ``root/<class>/*.{jpg,jpeg,png,bmp,webp}``, classes in sorted folder order.

Optional boxes CSV with the header ``path,x0,y0,x1,y1`` (path relative to the root, one row
per box, pixels of the original image). Images without rows have no boxes.
"""

from __future__ import annotations

import csv
from pathlib import Path

from data_shards.records import Box, SourceListing, SourceRecord
from data_shards.sources.common import (
    LayoutError,
    check_no_orphans,
    list_images,
    require_dir,
    require_file,
    sorted_subdirs,
)

BOXES_HEADER = ["path", "x0", "y0", "x1", "y1"]


def read_boxes_csv(path: Path) -> dict[str, list[tuple[Box, str]]]:
    """Boxes per relative image path, each with where it is written (``file:line``)."""
    out: dict[str, list[tuple[Box, str]]] = {}
    with open(require_file(path, f"a CSV with the header {','.join(BOXES_HEADER)}"), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != BOXES_HEADER:
            raise LayoutError(f"{path}: expected the header {','.join(BOXES_HEADER)}, got {header}")
        for line, row in enumerate(reader, start=2):
            try:
                x0, y0, x1, y1 = (float(v) for v in row[1:])
            except ValueError as err:
                raise LayoutError(f"{path}:{line}: expected path and 4 numbers, got {row}") from err
            out.setdefault(row[0], []).append(((x0, y0, x1, y1), f"{path}:{line}"))
    return out


def list_folder(root: Path, split: str, boxes_csv: Path | None = None) -> SourceListing:
    """List an image folder; ``split`` only names the output."""
    require_dir(root, "a folder with one subfolder of images per class")
    class_dirs = sorted_subdirs(root)
    if not class_dirs:
        raise LayoutError(f"{root} has no class subfolders; expected root/<class>/*.jpg")
    classes = tuple(d.name for d in class_dirs)
    boxes = read_boxes_csv(boxes_csv) if boxes_csv is not None else {}
    records = []
    for label, folder in enumerate(class_dirs):
        for path in list_images(folder):
            rel = path.relative_to(root).as_posix()
            key = f"{folder.name}__{path.stem}".replace(".", "_")  # WebDataset keys end at the first dot
            records.append(
                SourceRecord(
                    key=key,
                    source=rel,
                    label=label,
                    class_name=folder.name,
                    boxes=tuple(b for b, _ in boxes.get(rel, ())),
                    box_origins=tuple(o for _, o in boxes.get(rel, ())),
                    path=str(path),
                )
            )
    if not records:
        raise LayoutError(f"no images under {root}/<class>/ (extensions .jpg .jpeg .png .bmp .webp)")
    if boxes_csv is not None:
        check_no_orphans(boxes, {r.source for r in records}, boxes_csv, root)
    return SourceListing("folder", split, classes, tuple(records))
