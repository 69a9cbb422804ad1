"""Small dataset trees for the data_shards tests, built on the fly, with their ground truth."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ["n01440764", "n01443537", "n01484850"]


@dataclass
class Truth:
    """What a converted sample must hold."""

    label: int
    boxes: list[list[float]]  # after clipping, original pixels
    size: tuple[int, int]  # original (width, height)
    stored: tuple[int, int]  # stored JPEG size
    raw_boxes: list[list[float]] | None = None  # as annotated, before clipping


def pixels(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth, JPEG-friendly RGB test image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 255, 3)
    img = (base + np.stack([xx * 2, yy * 2, (xx + yy)], -1) + rng.integers(0, 20, (height, width, 3))) % 256
    return img.astype(np.uint8)


def save(path: Path, width: int, height: int, seed: int, mode: str = "RGB", fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels(width, height, seed)).convert(mode)
    img.save(path, format=fmt, quality=92)


def truncate(path: Path, width: int, height: int, seed: int) -> None:
    """A JPEG cut in half."""
    buf = io.BytesIO()
    Image.fromarray(pixels(width, height, seed)).save(buf, format="JPEG", quality=92)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def many_boxes(n: int, width: int, height: int) -> list[list[float]]:
    return [[float(i), float(i % 7), float(width - 1 - i), float(height - 1 - (i % 5))] for i in range(n)]


def build_imagenet(root: Path, flat_val: bool = True) -> dict[str, Truth]:
    """ImageNet tree: train/<wnid>/ (4 images each) and val/ with the hard cases.
    Returns val truth by stem."""
    for c, wnid in enumerate(WNIDS):
        for i in range(4):
            save(root / "train" / wnid / f"{wnid}_{i}.JPEG", 40 + 8 * i, 30 + 4 * c, seed=100 + 10 * c + i)
    cases = [  # stem, wnid index, size, boxes, kind
        ("ILSVRC2012_val_00000001", 0, (120, 90), [[10, 5, 100, 80]], "rgb"),
        ("ILSVRC2012_val_00000002", 1, (100, 80), [[0, 0, 50, 40], [30, 20, 99, 79]], "cmyk"),
        ("ILSVRC2012_val_00000003", 2, (64, 48), [[4, 4, 40, 30]], "png"),
        ("ILSVRC2012_val_00000004", 0, (80, 100), [[1, 2, 70, 90]], "gray"),
        ("ILSVRC2012_val_00000005", 1, (100, 100), [[1, 1, 50, 50]], "truncated"),
        ("ILSVRC2012_val_00000006", 2, (160, 120), many_boxes(25, 160, 120), "rgb"),
        ("ILSVRC2012_val_00000007", 1, (90, 60), [[-5, 10, 95, 70], [2, 3, 20, 30]], "rgb"),
    ]
    truth = {}
    for n, (stem, c, (w, h), boxes, kind) in enumerate(cases):
        folder = root / "val" if flat_val else root / "val" / WNIDS[c]
        path = folder / f"{stem}.JPEG"
        if kind == "truncated":
            truncate(path, w, h, seed=n)
        else:
            save(
                path,
                w,
                h,
                seed=n,
                mode={"cmyk": "CMYK", "gray": "L"}.get(kind, "RGB"),
                fmt="PNG" if kind == "png" else "JPEG",
            )
        clipped = [[min(max(v, 0), (w if i % 2 == 0 else h) - 1) for i, v in enumerate(b)] for b in boxes]
        truth[stem] = Truth(
            c,
            [[float(v) for v in b] for b in clipped],
            (w, h),
            (w, h),
            [[float(v) for v in b] for b in boxes],
        )
    return truth


def write_annotations(root: Path, truth: dict[str, Truth], fmt: str) -> Path:
    """Write the val truth in one of the four ImageNet annotation formats; returns its path."""
    if fmt == "xml":
        folder = root / "val_xml"
        folder.mkdir()
        for stem, t in truth.items():
            objects = "".join(
                f"<object><name>{WNIDS[t.label]}</name><bndbox><xmin>{b[0]:g}</xmin><ymin>{b[1]:g}</ymin>"
                f"<xmax>{b[2]:g}</xmax><ymax>{b[3]:g}</ymax></bndbox></object>"
                for b in t.raw_boxes
            )
            (folder / f"{stem}.xml").write_text(
                f"<annotation><filename>{stem}</filename><size><width>{t.size[0]}</width>"
                f"<height>{t.size[1]}</height><depth>3</depth></size>{objects}</annotation>"
            )
        return folder
    if fmt == "loc-csv":
        path = root / "LOC_val_solution.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ImageId", "PredictionString"])
            for stem, t in truth.items():
                w.writerow(
                    [
                        stem,
                        " ".join(f"{WNIDS[t.label]} " + " ".join(f"{v:g}" for v in b) for b in t.raw_boxes),
                    ]
                )
        return path
    if fmt == "wsol":
        folder = root / "wsol" / "test"
        folder.mkdir(parents=True)
        rel = {stem: f"val/{stem}.JPEG" for stem in truth}
        (folder / "image_ids.txt").write_text("".join(f"{rel[s]}\n" for s in truth))
        (folder / "class_labels.txt").write_text("".join(f"{rel[s]},{t.label}\n" for s, t in truth.items()))
        (folder / "image_sizes.txt").write_text(
            "".join(f"{rel[s]},{t.size[0]},{t.size[1]}\n" for s, t in truth.items())
        )
        (folder / "localization.txt").write_text(
            "".join(
                f"{rel[s]}," + ",".join(f"{v:g}" for v in b) + "\n"
                for s, t in truth.items()
                for b in t.raw_boxes
            )
        )
        return folder
    if fmt == "val-folder":
        path = root / "val_folder_new.txt"
        path.write_text(
            "".join(
                f"{WNIDS[t.label]}/{s}.JPEG {t.label} "
                + " ".join(f"{v:g}" for b in t.raw_boxes for v in b)
                + "\n"
                for s, t in truth.items()
            )
        )
        return path
    raise ValueError(fmt)


def build_cub(root: Path) -> dict[str, Truth]:
    """A 2-class CUB_200_2011 tree (3 train + 2 test images per class). Returns test truth by stem."""
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    lines = {k: [] for k in ("images", "labels", "split", "boxes")}
    truth = {}
    image_id = 0
    for c, name in enumerate(classes):
        for i in range(5):
            image_id += 1
            stem = f"{name.split('.')[1]}_{i:04d}_{image_id}"
            w, h = 50 + 5 * i, 40 + 3 * c
            save(root / "images" / name / f"{stem}.jpg", w, h, seed=image_id)
            x, y, bw, bh = 2.0 + i, 3.0, 20.0, 15.0 + c
            lines["images"].append(f"{image_id} {name}/{stem}.jpg")
            lines["labels"].append(f"{image_id} {c + 1}")
            lines["split"].append(f"{image_id} {1 if i < 3 else 0}")
            lines["boxes"].append(f"{image_id} {x} {y} {bw} {bh}")
            if i >= 3:
                truth[stem] = Truth(c, [[x, y, x + bw, y + bh]], (w, h), (w, h))
    (root / "classes.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(classes)))
    for key, name in (
        ("images", "images.txt"),
        ("labels", "image_class_labels.txt"),
        ("split", "train_test_split.txt"),
        ("boxes", "bounding_boxes.txt"),
    ):
        (root / name).write_text("\n".join(lines[key]) + "\n")
    return truth


def build_folder(root: Path) -> tuple[dict[str, Truth], Path]:
    """``root/<class>/`` images (jpg and png) and a boxes CSV.
    Returns truth by sample key and the CSV path."""
    truth = {}
    rows = [["path", "x0", "y0", "x1", "y1"]]
    for c, name in enumerate(["cats", "dogs"]):
        for i, ext in enumerate(["jpg", "png", "jpeg"]):
            w, h = 30 + 10 * i, 20 + 5 * c
            save(root / name / f"img{i}.{ext}", w, h, seed=10 * c + i, fmt="PNG" if ext == "png" else "JPEG")
            boxes = [[1.0, 2.0, 10.0 + i, 12.0]] if i != 2 else []
            rows += [[f"{name}/img{i}.{ext}", *b] for b in boxes]
            truth[f"{name}__img{i}"] = Truth(c, boxes, (w, h), (w, h))
    save(root / "dogs" / "pup.v2.jpg", 24, 26, seed=99)  # a dotted name: its key must lose the dot
    truth["dogs__pup_v2"] = Truth(1, [], (24, 26), (24, 26))
    csv_path = root.parent / f"{root.name}_boxes.csv"
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return truth, csv_path


def convert_folder_args(root: Path, out: Path, *extra: str, split: str = "val") -> list[str]:
    """``scm-shards`` arguments converting the image folder ``root`` into ``out``; ``extra``
    (``--boxes``, ``--format``, ...) go last."""
    return ["convert", "folder", "--root", str(root), "--split", split, "--out", str(out), *extra]


def read_webdataset(split_dir: Path) -> list[dict]:
    """All samples of a split, read with the plain webdataset library (no project code)."""
    import webdataset as wds

    info = json.loads((split_dir / "_info.json").read_text())
    split = next(iter(info["splits"].values()))
    urls = [str(split_dir / name) for name in split["filenames"]]
    dataset = wds.WebDataset(urls, shardshuffle=False).decode("pil")
    return list(dataset)


def read_ffcv(path: Path, batch_size: int = 8) -> list[tuple]:
    """All samples of a .beton, read with the plain ffcv Loader: (image, label, boxes, n, w, h, id)."""
    from ffcv.fields.decoders import CenterCropRGBImageDecoder, IntDecoder, NDArrayDecoder
    from ffcv.loader import Loader, OrderOption

    pipelines = {
        "image": [CenterCropRGBImageDecoder((16, 16), 1.0)],
        "label": [IntDecoder()],
        "boxes": [NDArrayDecoder()],
        "num_boxes": [IntDecoder()],
        "width": [IntDecoder()],
        "height": [IntDecoder()],
        "sample_id": [IntDecoder()],
    }
    loader = Loader(
        str(path),
        batch_size=batch_size,
        num_workers=1,
        order=OrderOption.SEQUENTIAL,
        pipelines=pipelines,
        drop_last=False,
    )
    out = []
    for batch in loader:
        for i in range(len(batch[0])):
            out.append(tuple(np.array(x[i]) for x in batch))
    return out


def ffcv_image_sizes(path: Path) -> list[tuple[int, int]]:
    """Stored (width, height) of each image in a .beton, from ffcv's own reader."""
    from ffcv.reader import Reader

    meta = Reader(str(path)).metadata
    return [(int(m["f0"]["width"]), int(m["f0"]["height"])) for m in meta]
