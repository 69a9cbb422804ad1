"""Reading one source image: check it decodes, keep its JPEG bytes or re-encode it, check its boxes."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from data_shards.decode import image_problem
from data_shards.records import Box, PreparedSample, SourceRecord
from data_shards.schema import SkippedSample

# Errors PIL raises for unreadable, corrupt or truncated files.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode an RGB uint8 array as baseline JPEG (OpenCV; the same bytes for the same pixels)."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    )
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buf.tobytes()


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Size after shrinking so that the longer side is at most ``max_side`` (never enlarges)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def box_fault(box: Box, width: int, height: int) -> str | None:
    """Why ``box`` cannot be kept in a ``width`` x ``height`` image: a non-finite coordinate,
    or no pixel in common with the image; None when it can (perhaps after clipping)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if not np.isfinite([x0, y0, x1, y1]).all():
        return "has a non-finite coordinate"
    if x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1:
        return f"lies wholly outside the {width}x{height} image"
    return None


def clip_boxes(boxes: tuple[Box, ...], width: int, height: int, where: str) -> tuple[tuple[Box, ...], int]:
    """Clip boxes to the pixel grid ``[0, width-1] x [0, height-1]``; returns the boxes and how many changed.

    Raises ``ValueError`` for a box with x1 < x0 or y1 < y0 (a broken annotation, not a clipping case).
    """
    out, clipped = [], 0
    for box in boxes:
        x0, y0, x1, y1 = (float(v) for v in box)
        if x1 < x0 or y1 < y0:
            raise ValueError(
                f"{where}: box {list(box)} has x1 < x0 or y1 < y0; expected x0,y0,x1,y1 in pixels"
            )
        new = (
            min(max(x0, 0.0), width - 1.0),
            min(max(y0, 0.0), height - 1.0),
            min(max(x1, 0.0), width - 1.0),
            min(max(y1, 0.0), height - 1.0),
        )
        clipped += new != (x0, y0, x1, y1)
        out.append(new)
    return tuple(out), clipped


def _rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8 pixels; 16-bit (and 32-bit integer) grey images scaled from their 0-65535
    range, where PIL's own conversion would clip every value above 255 to white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def prepare_sample(
    record: SourceRecord, sample_id: int, max_side: int | None, jpeg_quality: int
) -> PreparedSample | SkippedSample:
    """Read, check and (only when needed) re-encode one image.

    The source JPEG bytes are kept as they are unless the file is not an RGB JPEG (PNG, CMYK,
    grayscale, ...) or is larger than ``max_side``. Unreadable, corrupt or truncated files give
    :class:`SkippedSample`.
    """
    try:
        if record.data is not None:
            raw = record.data
        else:
            assert record.path is not None  # a SourceRecord has exactly one of path and data
            with open(record.path, "rb") as f:
                raw = f.read()
        with Image.open(io.BytesIO(raw)) as image:
            fmt, mode, (width, height) = image.format, image.mode, image.size
            new_size = scaled_size(width, height, max_side)
            # An RGB JPEG kept as it is must pass the loaders' strict decode (one decode, no PIL
            # load); one that libjpeg-turbo refuses or warns about is decoded by PIL and
            # re-encoded, or skipped when PIL cannot decode it either.
            reencode = (
                fmt != "JPEG"
                or mode != "RGB"
                or new_size != (width, height)
                or image_problem(raw) is not None
            )
            rgb = None
            if reencode:
                image.load()
                rgb = _rgb(image)
    except Image.UnidentifiedImageError:
        return SkippedSample(
            record.source, "unreadable: not an image format PIL knows (empty or damaged file?)"
        )
    except _DECODE_ERRORS as err:
        return SkippedSample(record.source, f"unreadable, corrupt or truncated image: {err}")
    if reencode:
        assert rgb is not None  # decoded above whenever reencode is set
        if new_size != (width, height):
            rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
        raw = encode_jpeg(rgb, jpeg_quality)
    frame_w, frame_h = record.size or (width, height)
    kept, bad = [], []
    for index, box in enumerate(record.boxes):
        fault = box_fault(box, frame_w, frame_h)
        if fault is None:
            kept.append(box)
            continue
        origin = record.box_origins[index] if index < len(record.box_origins) else "annotation"
        bad.append(f"{origin}: box {list(box)} of {record.source} {fault}")
    boxes, clipped = clip_boxes(tuple(kept), frame_w, frame_h, record.source)
    return PreparedSample(
        key=record.key,
        sample_id=sample_id,
        label=record.label,
        class_name=record.class_name,
        source=record.source,
        jpeg=raw,
        width=frame_w,
        height=frame_h,
        image_width=new_size[0],
        image_height=new_size[1],
        boxes=boxes,
        boxes_clipped=clipped,
        reencoded=reencode,
        bad_boxes=tuple(bad),
    )
