"""The one test of whether stored image bytes are a sound image, shared by the converter,
``scm-shards verify --deep`` and both training loaders.

JPEGs are decoded by libjpeg-turbo (``simplejpeg``) in strict mode: a "Corrupt JPEG data"
warning (garbage after the entropy data, a premature end, stray markers) is an error. That is
the same verdict FFCV's decoder gives (it calls libjpeg-turbo's ``tjDecompress2``, which
returns -1 on such warnings), while OpenCV and PIL print the warning or nothing and hand out a
partly grey image. Other formats (PNG in hand-made shards) go through OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg

JPEG_MAGIC = b"\xff\xd8"


class CorruptImageError(ValueError):
    """The bytes are not a sound image; the message says what the decoder found."""


def decode_rgb(data: bytes) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of the image bytes; :class:`CorruptImageError` when the decoder
    fails or, for a JPEG, warns."""
    if data[:2] == JPEG_MAGIC:
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
        except ValueError as err:
            raise CorruptImageError(f"corrupt JPEG data ({err})") from err
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise CorruptImageError("not a decodable image (neither a JPEG nor a format OpenCV reads)")
    return image


def check_jpeg_header(data: bytes) -> None:
    """:class:`CorruptImageError` unless ``data`` is a JPEG whose header libjpeg-turbo reads:
    the cheap check of GPU decoding, which leaves the entropy data to the GPU's decoder."""
    if data[:2] != JPEG_MAGIC:
        raise CorruptImageError("not a JPEG (GPU decoding reads JPEGs only)")
    try:
        simplejpeg.decode_jpeg_header(data)
    except ValueError as err:
        raise CorruptImageError(f"corrupt JPEG header ({err})") from err


def image_problem(data: bytes) -> str | None:
    """Why ``data`` is not a sound image, or None when it decodes cleanly."""
    try:
        decode_rgb(data)
    except CorruptImageError as err:
        return str(err)
    return None
