"""Writing, verifying and describing ``manifest.json`` (field names live in :mod:`data_shards.schema`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_shards.decode import CorruptImageError, decode_rgb
from data_shards.names import sample_key_problem
from data_shards.records import SourceListing
from data_shards.schema import (
    BOX_DTYPE,
    FFCV_BOXES,
    FFCV_FIELDS,
    FFCV_HEIGHT,
    FFCV_IMAGE,
    FFCV_LABEL,
    FFCV_NUM_BOXES,
    FFCV_SAMPLE_ID,
    FFCV_WIDTH,
    FORMAT_FFCV,
    FORMAT_WEBDATASET,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    WDS_IMAGE_KEY,
    WDS_INFO_KEY,
    WDS_LABEL_KEY,
    Manifest,
    ShardEntry,
    SkippedSample,
    boxes_from_ffcv,
    decode_sample_json,
    read_manifest,
)
from data_shards.writers.atomic import sha256_file, write_json_atomic


def build_manifest(
    listing: SourceListing,
    formats: Sequence[str],
    max_boxes: int,
    shards: Sequence[ShardEntry],
    *,
    total_samples: int,
    total_boxes: int,
    images_in: int,
    boxes_clipped: int,
    skipped: Sequence[SkippedSample],
    boxes_skipped: int = 0,
    arguments: dict[str, Any],
) -> Manifest:
    """The manifest of a finished split; checks that nothing was lost (in = out + skipped)."""
    if images_in != total_samples + len(skipped):
        raise AssertionError(f"{images_in} images in but {total_samples} written + {len(skipped)} skipped")
    return Manifest(
        schema_version=SCHEMA_VERSION,
        source=listing.name,
        split=listing.split,
        formats=tuple(formats),
        classes=listing.classes,
        max_boxes=max_boxes,
        shards=tuple(shards),
        total_samples=total_samples,
        total_boxes=total_boxes,
        images_in=images_in,
        boxes_clipped=boxes_clipped,
        skipped=tuple(skipped),
        arguments=arguments,
        boxes_skipped=boxes_skipped,
    )


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write ``folder/manifest.json`` atomically."""
    write_json_atomic(folder / MANIFEST_NAME, manifest.to_dict())


def split_dirs(path: Path) -> list[Path]:
    """The split folders at ``path``: itself if it holds a manifest, else its subfolders that do."""
    if (path / MANIFEST_NAME).is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if (p / MANIFEST_NAME).is_file()) if path.is_dir() else []
    if not found:
        raise FileNotFoundError(
            f"no {MANIFEST_NAME} in {path} or its subfolders; expected the --out "
            "folder of `scm-shards convert`/`synth` or one of its split folders"
        )
    return found


def box_problem(box: Sequence[float], width: int, height: int) -> str | None:
    """Why ``box`` breaks the schema in a ``width`` x ``height`` frame (non-finite, corners out
    of order, outside ``[0, width-1] x [0, height-1]``), or None."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return f"box {list(box)} has a non-finite coordinate"
    if not (0 <= x0 <= x1 <= width - 1 and 0 <= y0 <= y1 <= height - 1):
        return f"box {list(box)} outside its {width}x{height} frame or corners out of order"
    return None


def _tar_problems(path: Path, entry: ShardEntry, deep: bool) -> Iterator[str]:
    from data_shards.writers.webdataset import iter_tar_samples

    count = 0
    try:
        for key, parts in iter_tar_samples(path):
            count += 1
            missing = {WDS_IMAGE_KEY, WDS_LABEL_KEY, WDS_INFO_KEY} - set(parts)
            if missing:
                yield f"{entry.name}: sample {key} lacks {sorted(missing)}"
                continue
            yield from (f"{entry.name}: sample {key}: {p}" for p in _sample_problems(key, parts, deep))
    except Exception as err:  # a damaged tar can raise anything from tarfile
        yield f"{entry.name}: unreadable tar after {count} samples ({err})"
        return
    if count != entry.samples:
        yield f"{entry.name}: {count} samples, manifest says {entry.samples}"


def _sample_problems(key: str, parts: dict[str, bytes], deep: bool) -> Iterator[str]:
    """The json, the label and every box always; with ``deep`` the image as the loaders decode it."""
    problem = sample_key_problem(key)
    if problem:
        yield f"key {key!r} is not a plain name ({problem})"
    try:
        info = decode_sample_json(parts[WDS_INFO_KEY])
    except Exception as err:
        yield f"json does not parse ({err})"
        return
    if int(parts[WDS_LABEL_KEY]) != info.label:
        yield f"cls {parts[WDS_LABEL_KEY]!r} differs from the json label {info.label}"
    yield from filter(None, (box_problem(box, info.width, info.height) for box in info.boxes))
    if not deep:
        return
    try:
        height, width = decode_rgb(parts[WDS_IMAGE_KEY]).shape[:2]
    except CorruptImageError as err:
        yield f"JPEG does not decode ({err})"
        return
    if (width, height) != (info.image_width, info.image_height):
        yield f"image is {(width, height)}, json says {(info.image_width, info.image_height)}"


def _ffcv_problems(path: Path, entry: ShardEntry, manifest: Manifest, deep: bool) -> Iterator[str]:
    """Sample count, labels and every box always; with ``deep`` every image decoded."""
    from ffcv.reader import Reader

    try:
        reader = Reader(str(path))
    except Exception as err:
        yield f"{entry.name}: FFCV cannot read the file ({err})"
        return
    if reader.num_samples != entry.samples:
        yield f"{entry.name}: {reader.num_samples} samples, manifest says {entry.samples}"
    meta = reader.metadata
    column = {name: f"f{i}" for i, name in enumerate(FFCV_FIELDS)}
    sizes = {int(p): int(s) for p, s in zip(reader.alloc_table["ptr"], reader.alloc_table["size"])}

    def read(f, ptr: int, size: int) -> bytes:
        f.seek(ptr)
        return f.read(size)

    with open(path, "rb") as f:
        for index in range(reader.num_samples):
            row = meta[index]
            where = f"{entry.name}: sample {index} (sample_id {int(row[column[FFCV_SAMPLE_ID]])})"
            if deep:
                image = row[column[FFCV_IMAGE]]
                ptr = int(image["data_ptr"])
                data = read(f, ptr, sizes.get(ptr, 0))
                try:
                    decoded = decode_rgb(data)
                except CorruptImageError as err:
                    yield f"{where}: image does not decode ({err})"
                else:
                    if decoded.shape[:2] != (int(image["height"]), int(image["width"])):
                        yield f"{where}: image does not decode to its stated size"
            if not 0 <= int(row[column[FFCV_LABEL]]) < len(manifest.classes):
                yield f"{where}: label outside the {len(manifest.classes)} classes"
            count = int(row[column[FFCV_NUM_BOXES]])
            boxes = np.frombuffer(read(f, int(row[column[FFCV_BOXES]]), manifest.max_boxes * 16), BOX_DTYPE)
            if not 0 <= count <= manifest.max_boxes or boxes.size != manifest.max_boxes * 4:
                yield f"{where}: box count {count} outside 0..{manifest.max_boxes}"
                continue
            w, h = int(row[column[FFCV_WIDTH]]), int(row[column[FFCV_HEIGHT]])
            if boxes.reshape(-1, 4)[count:].any():
                yield f"{where}: padding rows of the boxes array are not zero"
            for box in boxes_from_ffcv(boxes, count):
                problem = box_problem(box.tolist(), w, h)
                if problem:
                    yield f"{where}: {problem}"


def verify_split(folder: Path, deep: bool = False) -> list[str]:
    """Problems found in one split folder (empty when it matches its manifest)."""
    manifest = read_manifest(folder)
    problems = []
    for entry in manifest.shards:
        path = folder / entry.name
        if not path.is_file():
            problems.append(f"{entry.name}: missing")
            continue
        if path.stat().st_size != entry.bytes:
            problems.append(f"{entry.name}: {path.stat().st_size} bytes, manifest says {entry.bytes}")
        if sha256_file(path) != entry.sha256:
            problems.append(f"{entry.name}: sha256 differs from the manifest (the file changed)")
        if entry.format == FORMAT_WEBDATASET:
            problems += _tar_problems(path, entry, deep)
        elif entry.format == FORMAT_FFCV:
            problems += _ffcv_problems(path, entry, manifest, deep)
    for fmt in manifest.formats:
        total = sum(s.samples for s in manifest.shards_of(fmt))
        if total != manifest.total_samples:
            problems.append(f"{fmt}: {total} samples in the files, manifest total {manifest.total_samples}")
    if manifest.images_in != manifest.total_samples + len(manifest.skipped):
        problems.append(
            f"images in ({manifest.images_in}) != samples ({manifest.total_samples}) "
            f"+ skipped ({len(manifest.skipped)})"
        )
    return problems


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def describe_split(folder: Path) -> str:
    """A readable summary of one split folder."""
    m = read_manifest(folder)
    lines = [
        f"{folder}: {m.source} / {m.split}",
        f"  samples {m.total_samples} (of {m.images_in} images; {len(m.skipped)} skipped), "
        f"boxes {m.total_boxes} ({m.boxes_clipped} clipped, {m.boxes_skipped} bad ones left out), "
        f"classes {len(m.classes)} "
        f"({', '.join(m.classes[:5])}{', ...' if len(m.classes) > 5 else ''})",
    ]
    for fmt in m.formats:
        files = m.shards_of(fmt)
        size = sum(s.bytes for s in files)
        lines.append(
            f"  {fmt}: {len(files)} file(s), {_human_bytes(size)}, "
            f"{_human_bytes(size / max(m.total_samples, 1))} per image"
        )
    if FORMAT_FFCV in m.formats:
        lines.append(f"  FFCV boxes array: [{m.max_boxes}, 4]")
    if "centred_box_accuracy_iou50" in m.arguments:
        a = m.arguments
        lines.append(
            f"  best centred box: IoU>=0.5 on {a['centred_box_accuracy_iou50']:.1%} of images "
            f"({a['centred_box_width_fraction']:.2f} x {a['centred_box_height_fraction']:.2f} of the image)"
        )
    for s in m.skipped:
        lines.append(f"  skipped {s.source}: {s.reason}")
    return "\n".join(lines)
