"""Raw sample streams from WebDataset tar shards: the samples of a shard segment, as a
webdataset pipeline stage.

Reading goes through webdataset's own tar iteration (``tar_file_expander``, ``group_by_keys``)
over the byte stream the shard set opens (a local file, or a remote shard checked against
its digest as it streams); every error is re-raised as :class:`ShardError` naming the
shard, and every shard is counted against the manifest while it is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch.utils.data
from webdataset.tariterators import group_by_keys, tar_file_expander

from data_shards.remote import RemoteError

from .shards import ShardError, ShardSet
from .split import Segment


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


def segment_samples(shards: ShardSet) -> Callable[[Iterable[dict[str, Any]]], Iterator[dict[str, Any]]]:
    """A webdataset pipeline stage: shard-list items (``url`` dicts, with the ``segment`` to
    read or a whole shard) to their raw samples."""
    index = {shards.url(i): i for i in range(len(shards.counts))}

    def stage(items: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            shard = index[item["url"]]
            yield from read_segment(shards, item.get("segment") or Segment(shard, 0, shards.counts[shard]))

    return stage
