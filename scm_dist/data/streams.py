"""Raw sample streams from WebDataset tar shards: segment reading and a seeded shuffle buffer.

Reading goes through webdataset's own tar iteration (``tar_file_expander``, ``group_by_keys``)
over the byte stream the shard set opens (a local file, or a remote shard checked against
its digest as it streams); every error is re-raised as :class:`ShardError` naming the
shard, and every shard is counted against the manifest while it is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, TypeVar

import numpy as np
import torch.utils.data
from webdataset.tariterators import group_by_keys, tar_file_expander

from data_shards.remote import RemoteError

from .shards import ShardError, ShardSet
from .split import Segment

T = TypeVar("T")


def worker_identity() -> tuple[int, int]:
    """(this DataLoader worker's index, number of workers); (0, 1) in the main process."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def read_segment(shards: ShardSet, segment: Segment) -> Iterator[dict[str, Any]]:
    """Raw samples (dicts of member bytes, ``__key__``, ``__url__``) ``first..stop-1`` of a
    shard. Samples before ``first`` are read but never decoded."""
    url, count = shards.url(segment.shard), shards.counts[segment.shard]
    position = 0
    try:
        with shards.open(segment.shard) as stream:
            for sample in group_by_keys(tar_file_expander([{"url": url, "stream": stream}])):
                if position >= count:
                    raise ShardError(
                        f"shard {url} holds more samples than the {count} of the manifest; "
                        "reconvert the split"
                    )
                if position >= segment.first:
                    yield sample
                position += 1
                if position == segment.stop < count:
                    return
    except ShardError:
        raise
    except RemoteError as err:  # names the URL and what to do; a digest mismatch is one too
        raise ShardError(f"shard {err.message}") from err
    except Exception as err:
        raise ShardError(
            f"shard {url} cannot be read after {position} samples ({err!r}); "
            "it is damaged: copy it again or reconvert the split"
        ) from err
    if position < segment.stop:
        raise ShardError(
            f"shard {url} ended after {position} samples, the manifest says "
            f"{count}; copy it again or reconvert the split"
        )


def read_segments(shards: ShardSet, segments: Iterable[Segment]) -> Iterator[dict[str, Any]]:
    """The samples of several segments, one after the other."""
    return chain.from_iterable(read_segment(shards, s) for s in segments)


def buffer_shuffle(stream: Iterable[T], size: int, rng: np.random.Generator) -> Iterator[T]:
    """WebDataset-style shuffle: keep ``size`` items, hand out a random one as each new one
    arrives, then the rest in random order. Deterministic for a given ``rng``."""
    buffer: list[T] = []
    for item in stream:
        if len(buffer) < max(size, 1):
            buffer.append(item)
            continue
        pick = int(rng.integers(len(buffer)))
        yield buffer[pick]
        buffer[pick] = item
    for pick in rng.permutation(len(buffer)):
        yield buffer[pick]


def batched(stream: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items, the last one shorter."""
    batch: list[T] = []
    for item in stream:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
