"""The loaders' decode step: a sample's key must be a plain name and its image must pass the
same check as ``scm-shards verify --deep`` (:func:`data_shards.decode.decode_rgb`; with GPU
decoding only its header is checked here); a
corrupt image is skipped (``data.skip_corrupt``, training only) or stops the run with a
:class:`ShardError` naming the sample and its shard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from data_shards.decode import CorruptImageError, check_jpeg_header, decode_rgb
from data_shards.names import sample_key_problem
from data_shards.schema import WDS_IMAGE_KEY

from .shards import ShardError

T = TypeVar("T")
SKIP_HINT = "set data.skip_corrupt=true to skip such training samples"
EVAL_HINT = "evaluation needs every image: reconvert the split"


def check_key(key: Any, shard: Any) -> str:
    """``key`` when it is a plain sample name, else a :class:`ShardError` naming it and the shard."""
    problem = sample_key_problem(key) if isinstance(key, str) else "it is not text"
    if problem:
        raise ShardError(
            f"sample key {key!r} in shard {shard} is not a plain name ({problem}); "
            "the shard was not written by data_shards: reconvert the split"
        )
    return key


def sample_member(sample: dict[str, Any], name: str) -> bytes:
    """The ``name`` member of a WebDataset sample dict, or a :class:`ShardError` naming the
    sample and its shard."""
    if name not in sample:
        raise ShardError(
            f"sample {sample.get('__key__')} in shard {sample.get('__url__')} has "
            f"no .{name} member; reconvert the split with data_shards"
        )
    return sample[name]


def _image_member(sample: dict[str, Any], json_key: str | None) -> tuple[str, Any, bytes]:
    """(key, shard, image bytes) of a sample whose key (and ``json_key``) are plain names."""
    shard = sample.get("__url__")
    key = check_key(sample.get("__key__"), shard)
    if json_key is not None:
        check_key(json_key, shard)
    return key, shard, sample_member(sample, WDS_IMAGE_KEY)


def _checked(
    check: Callable[[bytes], T], sample: dict[str, Any], skip_corrupt: bool, hint: str, json_key: str | None
) -> T | None:
    key, shard, data = _image_member(sample, json_key)
    try:
        return check(data)
    except CorruptImageError as err:
        if skip_corrupt:
            return None
        raise ShardError(f"sample {key} in shard {shard} is not a decodable image ({err}); {hint}") from err


def decode_sample(
    sample: dict[str, Any], skip_corrupt: bool, hint: str = SKIP_HINT, json_key: str | None = None
) -> np.ndarray | None:
    """RGB uint8 image of a WebDataset sample dict (``__key__``, ``__url__``, members); None
    when it is corrupt and ``skip_corrupt`` is set. ``json_key``, the key the sample's json
    states, is checked as well when given."""
    return _checked(decode_rgb, sample, skip_corrupt, hint, json_key)


def encoded_sample(sample: dict[str, Any], skip_corrupt: bool) -> bytes | None:
    """The JPEG bytes of a train sample left for the GPU to decode (``data.decode: gpu``):
    the key and the JPEG header are checked here, the body by the GPU's decoder; None when
    the header is corrupt and ``skip_corrupt`` is set."""

    def header_checked(data: bytes) -> bytes:
        check_jpeg_header(data)
        return data

    return _checked(header_checked, sample, skip_corrupt, SKIP_HINT, None)
