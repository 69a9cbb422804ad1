"""ImageNet-1K: ``train/<wnid>/*.JPEG`` and ``val/*.JPEG`` (flat) or ``val/<wnid>/*.JPEG``.

Val labels and boxes come from any one of four annotation formats, detected from the path:

- a folder of PASCAL VOC XML files, one ``<stem>.xml`` per image (the official boxes);
- ``LOC_val_solution.csv``: ``ImageId,PredictionString`` with ``wnid x0 y0 x1 y1 ...``;
- a wsolevaluation metadata folder (``image_ids.txt``, ``class_labels.txt``,
  ``image_sizes.txt``, ``localization.txt``; labels are class indices);
- ``val_folder_new.txt``: ``wnid/<file> label x0 y0 x1 y1 [...]``.

Class index = position of the wnid in the sorted wnids (from ``--classes``, ``train/``, or
the class folders of ``val/``).
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import dataclass
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

ANNOTATION_FORMATS = ("auto", "xml", "loc-csv", "wsol", "val-folder")


@dataclass(frozen=True)
class Annotation:
    """Label (as a wnid or an index) and boxes of one image, keyed elsewhere by file name."""

    wnid: str | None
    label: int | None
    boxes: tuple[Box, ...]
    size: tuple[int, int] | None
    origins: tuple[str, ...] = ()  # where each box is written: "file:line" or "file (object n)"


def _box(values: list[str], where: str) -> Box:
    try:
        x0, y0, x1, y1 = (float(v) for v in values)
    except ValueError as err:
        raise LayoutError(f"{where}: expected 4 numbers x0 y0 x1 y1, got {values}") from err
    return (x0, y0, x1, y1)


def _text(element: ET.Element, tag: str, path: Path) -> str:
    """The text of ``element``'s child ``tag``; a clear error when the child is missing."""
    text = element.findtext(tag)
    if text is None:
        raise LayoutError(f"{path}: <{element.tag}> without <{tag}>")
    return text


def parse_voc_xml(path: Path) -> Annotation:
    """One PASCAL VOC XML file: objects with a wnid name and xmin/ymin/xmax/ymax."""
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise LayoutError(f"{path} is not valid XML ({err})") from err
    size = tree.find("size")
    wh = (int(_text(size, "width", path)), int(_text(size, "height", path))) if size is not None else None
    wnids: list[str] = []
    boxes: list[Box] = []
    for obj in tree.iter("object"):
        box = obj.find("bndbox")
        if box is None:
            raise LayoutError(f"{path}: <object> without <bndbox>")
        wnids.append(_text(obj, "name", path))
        boxes.append(_box([_text(box, k, path) for k in ("xmin", "ymin", "xmax", "ymax")], str(path)))
    if len(set(wnids)) > 1:
        raise LayoutError(f"{path}: objects of several classes {sorted(set(wnids))}; expected one")
    origins = tuple(f"{path} (object {i + 1})" for i in range(len(boxes)))
    return Annotation(wnids[0] if wnids else None, None, tuple(boxes), wh, origins)


def read_xml_folder(folder: Path) -> dict[str, Annotation]:
    """All ``*.xml`` under ``folder`` (flat or in wnid subfolders), keyed by image stem."""
    return {p.stem: parse_voc_xml(p) for p in sorted(folder.rglob("*.xml"))}


def read_loc_csv(path: Path) -> dict[str, Annotation]:
    """``LOC_val_solution.csv``: keyed by ImageId (the image stem)."""
    out = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["ImageId", "PredictionString"]:
            raise LayoutError(f"{path}: expected the header ImageId,PredictionString, got {header}")
        for line, row in enumerate(reader, start=2):
            parts = row[1].split() if len(row) == 2 else []
            if not parts or len(parts) % 5:
                raise LayoutError(f"{path}:{line}: expected 'wnid x0 y0 x1 y1' repeated, got {row}")
            groups = [parts[i : i + 5] for i in range(0, len(parts), 5)]
            wnids = {g[0] for g in groups}
            if len(wnids) > 1:
                raise LayoutError(f"{path}:{line}: several classes {sorted(wnids)}; expected one")
            boxes = tuple(_box(g[1:], f"{path}:{line}") for g in groups)
            out[row[0]] = Annotation(groups[0][0], None, boxes, None, (f"{path}:{line}",) * len(boxes))
    return out


def _wsol_rows(path: Path) -> list[list[str]]:
    with open(require_file(path, "a wsolevaluation metadata file")) as f:
        return [line.rstrip("\n").split(",") for line in f if line.strip()]


def read_wsol_metadata(folder: Path) -> dict[str, Annotation]:
    """wsolevaluation metadata (``relative/path,values``), keyed by image stem."""
    ids = [r[0] for r in _wsol_rows(folder / "image_ids.txt")]
    labels = {r[0]: int(r[1]) for r in _wsol_rows(folder / "class_labels.txt")}
    sizes = {r[0]: (int(r[1]), int(r[2])) for r in _wsol_rows(folder / "image_sizes.txt")}
    boxes: dict[str, list[Box]] = {}
    origins: dict[str, list[str]] = {}
    for line, r in enumerate(_wsol_rows(folder / "localization.txt"), start=1):
        where = f"{folder / 'localization.txt'}:{line}"
        boxes.setdefault(r[0], []).append(_box(r[1:], where))
        origins.setdefault(r[0], []).append(where)
    out = {}
    for image_id in ids:
        if image_id not in labels or image_id not in sizes:
            raise LayoutError(f"{folder}: {image_id} is in image_ids.txt but has no class label or size")
        out[Path(image_id).stem] = Annotation(
            None,
            labels[image_id],
            tuple(boxes.get(image_id, ())),
            sizes[image_id],
            tuple(origins.get(image_id, ())),
        )
    return out


def read_val_folder_txt(path: Path) -> dict[str, Annotation]:
    """``val_folder_new.txt``: ``wnid/<file> label x0 y0 x1 y1 [...]``, keyed by image stem."""
    out = {}
    with open(path) as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2 or (len(parts) - 2) % 4 or "/" not in parts[0]:
                raise LayoutError(
                    f"{path}:{line_no}: expected 'wnid/file label x0 y0 x1 y1 ...', got {line!r}"
                )
            wnid, name = parts[0].split("/", 1)
            boxes = tuple(_box(parts[i : i + 4], f"{path}:{line_no}") for i in range(2, len(parts), 4))
            out[Path(name).stem] = Annotation(
                wnid, int(parts[1]), boxes, None, (f"{path}:{line_no}",) * len(boxes)
            )
    return out


def detect_annotation_format(path: Path) -> str:
    """The annotation format of ``path`` (see the module docstring)."""
    if path.is_dir():
        return "wsol" if (path / "image_ids.txt").is_file() else "xml"
    if path.suffix.lower() == ".csv":
        return "loc-csv"
    if path.suffix.lower() == ".txt":
        return "val-folder"
    raise LayoutError(
        f"cannot tell the annotation format of {path}; pass --annotation-format "
        f"({', '.join(ANNOTATION_FORMATS[1:])})"
    )


def read_annotations(path: Path, fmt: str = "auto") -> dict[str, Annotation]:
    """Read val annotations of any supported format, keyed by image stem."""
    if not path.exists():
        raise LayoutError(f"annotation path {path} does not exist")
    fmt = detect_annotation_format(path) if fmt == "auto" else fmt
    readers = {
        "xml": read_xml_folder,
        "loc-csv": read_loc_csv,
        "wsol": read_wsol_metadata,
        "val-folder": read_val_folder_txt,
    }
    if fmt not in readers:
        raise LayoutError(f"unknown annotation format {fmt!r}; expected one of {ANNOTATION_FORMATS}")
    return readers[fmt](path)


def read_classes_file(path: Path) -> list[str]:
    """Class list: one wnid per line (the first word of a line), sorted."""
    with open(require_file(path, "a class list with one wnid per line")) as f:
        return sorted({line.split()[0].split("/")[0] for line in f if line.strip()})


def _class_list(root: Path, classes_file: Path | None, annotations: dict[str, Annotation]) -> list[str]:
    if classes_file is not None:
        return read_classes_file(classes_file)
    for folder in (root / "train", root / "val"):
        if folder.is_dir() and sorted_subdirs(folder):
            return [d.name for d in sorted_subdirs(folder)]
    wnids = {a.wnid for a in annotations.values() if a.wnid}
    if not wnids:
        raise LayoutError(
            f"cannot tell the class list: no {root / 'train'} folders and the annotations "
            "hold class indices only; pass --classes FILE (one wnid per line, e.g. "
            "val_folder_new.txt)"
        )
    return sorted(wnids)


def _resolve_label(
    ann: Annotation, folder_wnid: str | None, classes: list[str], index: dict[str, int], where: str
) -> int:
    wnid = ann.wnid or folder_wnid
    if wnid is not None:
        if wnid not in index:
            raise LayoutError(f"{where}: unknown wnid {wnid!r}, not among the {len(classes)} classes")
        if ann.label is not None and ann.label != index[wnid]:
            raise LayoutError(
                f"{where}: label {ann.label} disagrees with wnid {wnid} (index {index[wnid]} in sorted wnids)"
            )
        return index[wnid]
    if ann.label is None or not 0 <= ann.label < len(classes):
        raise LayoutError(f"{where}: class index {ann.label} outside 0..{len(classes) - 1}")
    return ann.label


def list_imagenet(
    root: Path,
    split: str,
    annotations: Path | None = None,
    annotation_format: str = "auto",
    classes_file: Path | None = None,
    train_boxes: Path | None = None,
) -> SourceListing:
    """List an ImageNet-1K split with labels and boxes."""
    require_dir(root, "the ImageNet root holding train/ and/or val/")
    if split not in ("train", "val"):
        raise LayoutError(f"ImageNet has no labelled {split!r} split; use --split train or --split val")
    split_dir = require_dir(root / split, f"{split}/ under the ImageNet root")
    ann_path = train_boxes if split == "train" else annotations
    ann = read_annotations(ann_path, annotation_format) if ann_path is not None else {}
    class_dirs = sorted_subdirs(split_dir)
    if class_dirs:
        images: list[tuple[Path, str | None]] = [(p, d.name) for d in class_dirs for p in list_images(d)]
    else:
        if split == "train":
            raise LayoutError(f"{split_dir} has no class folders; expected train/<wnid>/*.JPEG")
        if ann_path is None:
            raise LayoutError(
                f"{split_dir} is flat (no class folders), so labels must come from "
                "--annotations (XML folder, LOC_val_solution.csv, wsol metadata or "
                "val_folder_new.txt)"
            )
        images = [(p, None) for p in list_images(split_dir)]
    if not images:
        raise LayoutError(
            f"no images found in {split_dir}; expected {split}/<wnid>/*.JPEG"
            + (" or val/*.JPEG" if split == "val" else "")
        )
    if ann_path is not None and split == "val":
        check_no_orphans(ann, {p.stem for p, _ in images}, ann_path, split_dir)
    classes = _class_list(root, classes_file, ann)
    index = {w: i for i, w in enumerate(classes)}
    records = []
    for path, folder_wnid in images:
        rel = str(path.relative_to(root))
        a = ann.get(path.stem)
        if a is None:
            if folder_wnid is None:
                raise LayoutError(f"{rel} has no label in {ann_path}; every val image needs one")
            a = Annotation(folder_wnid, None, (), None)
        label = _resolve_label(a, folder_wnid, classes, index, rel)
        records.append(
            SourceRecord(
                key=path.stem,
                source=rel,
                label=label,
                class_name=classes[label],
                boxes=a.boxes,
                box_origins=a.origins,
                size=a.size,
                path=str(path),
            )
        )
    return SourceListing("imagenet", split, tuple(classes), tuple(records))
