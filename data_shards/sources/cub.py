"""CUB-200-2011: ``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``,
``bounding_boxes.txt`` (x, y, width, height) and ``classes.txt`` under the root, images in ``images/``.

Boxes become ``[x, y, x + width, y + height]`` (as in the wsolevaluation CUB metadata);
``--split train`` takes is_training_image = 1, ``val`` and ``test`` take the others.
"""

from __future__ import annotations

from pathlib import Path

from data_shards.names import contained_path
from data_shards.records import Box, SourceListing, SourceRecord
from data_shards.sources.common import LayoutError, require_dir, require_file


def _table(path: Path, columns: int) -> dict[str, list[str]]:
    """Rows by their first column; the line number of each row is its last element."""
    require_file(path, f"a CUB-200-2011 table with {columns} columns per line")
    out = {}
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.strip().split(maxsplit=columns - 1)
            if not parts:
                continue
            if len(parts) != columns:
                raise LayoutError(f"{path}:{line_no}: expected {columns} columns, got {line!r}")
            out[parts[0]] = [*parts[1:], str(line_no)]
    return out


def list_cub(root: Path, split: str) -> SourceListing:
    """List a CUB-200-2011 split with labels and boxes."""
    require_dir(root, "the CUB_200_2011 folder (images.txt, images/, ...)")
    if split not in ("train", "val", "test"):
        raise LayoutError(f"CUB has splits train and test (val is an alias of test), not {split!r}")
    images = _table(root / "images.txt", 2)
    labels = _table(root / "image_class_labels.txt", 2)
    is_train = _table(root / "train_test_split.txt", 2)
    boxes = _table(root / "bounding_boxes.txt", 5)
    class_rows = _table(root / "classes.txt", 2)
    classes = tuple(class_rows[k][0].strip() for k in sorted(class_rows, key=int))
    wanted = "1" if split == "train" else "0"
    records, missing = [], []
    for image_id in sorted(images, key=int):
        rel = images[image_id][0].strip()
        if image_id not in labels or image_id not in is_train:
            raise LayoutError(f"{root}: image id {image_id} ({rel}) has no class label or split entry")
        if is_train[image_id][0] != wanted:
            continue
        path = contained_path(root / "images", rel, f"{root / 'images.txt'} (image {image_id})")
        if not path.is_file():
            missing.append(str(path))
            continue
        label = int(labels[image_id][0]) - 1
        if not 0 <= label < len(classes):
            raise LayoutError(
                f"{root / 'image_class_labels.txt'}: class {label + 1} of {rel} outside 1..{len(classes)}"
            )
        box: tuple[Box, ...] = ()
        origin: tuple[str, ...] = ()
        if image_id in boxes:
            x, y, w, h = (float(v) for v in boxes[image_id][:4])
            box = ((x, y, x + w, y + h),)
            origin = (f"{root / 'bounding_boxes.txt'}:{boxes[image_id][4]}",)
        records.append(
            SourceRecord(
                key=Path(rel).stem,
                source=f"images/{rel}",
                label=label,
                class_name=classes[label],
                boxes=box,
                box_origins=origin,
                path=str(path),
            )
        )
    if missing:
        raise LayoutError(
            f"{root / 'images.txt'} lists {len(missing)} image(s) that do not exist, "
            f"e.g. {missing[:5]}; expected them under {root / 'images'}"
        )
    return SourceListing("cub", split, classes, tuple(records))
