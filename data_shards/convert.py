"""Conversion of one split: order the records, prepare images in parallel, write shards, resume.

Progress is saved after every finished file in ``.progress.json`` (atomically), so a
conversion killed midway and rerun with ``resume=True`` keeps the finished shards whose
sha256 still matches and redoes the rest, giving the same files as an uninterrupted run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_shards.images import prepare_sample
from data_shards.manifest import build_manifest, verify_split, write_manifest
from data_shards.names import sample_key_problem
from data_shards.processes import worker_pool
from data_shards.records import PreparedSample, SourceListing, SourceRecord
from data_shards.schema import (
    FORMAT_FFCV,
    FORMAT_WEBDATASET,
    MANIFEST_NAME,
    MAX_BOXES,
    Manifest,
    ShardEntry,
    SkippedSample,
    read_manifest,
)
from data_shards.writers.atomic import TMP_SUFFIX, sha256_file, write_json_atomic
from data_shards.writers.webdataset import TarShardWriter, write_timm_info

log = logging.getLogger(__name__)
PROGRESS_NAME = ".progress.json"
STAGING_NAME = ".staging"


class ConversionError(RuntimeError):
    """A conversion cannot go on (strict mode, refused resume, bad options)."""


@dataclass(frozen=True)
class ConvertOptions:
    """Options that shape the output (all but ``workers`` and ``resume`` are in the fingerprint)."""

    formats: tuple[str, ...] = (FORMAT_WEBDATASET, FORMAT_FFCV)
    shard_size_mb: float = 256.0
    workers: int = 1
    max_side: int | None = None
    jpeg_quality: int = 90
    limit: int | None = None
    shuffle: bool = False
    seed: int = 0
    strict: bool = False
    resume: bool = False
    max_boxes: int = MAX_BOXES
    skip_bad_boxes: bool = False

    def fingerprint(self) -> dict[str, Any]:
        """The options that decide the bytes of the output."""
        data = asdict(self)
        for name in ("workers", "resume", "strict"):
            data.pop(name)
        data["formats"] = list(self.formats)
        return data


@dataclass
class _ShardProgress:
    entry: ShardEntry
    records_done: int  # records consumed up to the end of this shard (samples and skips)
    skipped: list[SkippedSample]
    boxes: int
    clipped: int
    bad_boxes: int = 0


def ordered_records(listing: SourceListing, options: ConvertOptions) -> list[tuple[SourceRecord, int]]:
    """``(record, sample_id)`` in output order: shuffled with the seed when asked, then limited."""
    order = np.arange(len(listing.records))
    if options.shuffle:
        order = np.random.default_rng(options.seed).permutation(len(order))
    if options.limit is not None:
        order = order[: options.limit]
    return [(listing.records[i], int(i)) for i in order]


def all_skipped(done: list[_ShardProgress], pending: list[SkippedSample]) -> list[SkippedSample]:
    """Every skipped image: those recorded with finished shards, then those after the last one."""
    return [k for s in done for k in s.skipped] + pending


def _check_keys(records: list[tuple[SourceRecord, int]]) -> None:
    seen: dict[str, str] = {}
    for record, _ in records:
        problem = sample_key_problem(record.key)
        if problem:
            raise ConversionError(
                f"{record.source}: sample key {record.key!r} is not a plain name ({problem})"
            )
        if record.key in seen:
            raise ConversionError(
                f"{record.source} and {seen[record.key]} give the same sample key "
                f"{record.key!r}; rename one of them"
            )
        seen[record.key] = record.source


def _fingerprint(
    listing: SourceListing, records: list[tuple[SourceRecord, int]], options: ConvertOptions
) -> dict[str, Any]:
    digest = hashlib.sha256()
    for record, sample_id in records:
        digest.update(json.dumps([record.key, sample_id, record.label, record.boxes, record.size]).encode())
    return {
        "source": listing.name,
        "split": listing.split,
        "options": options.fingerprint(),
        "records": len(records),
        "records_sha256": digest.hexdigest(),
    }


def _prepare_one(
    job: tuple[SourceRecord, int], max_side: int | None, quality: int
) -> PreparedSample | SkippedSample:
    return prepare_sample(job[0], job[1], max_side, quality)


def _prepared(
    records: list[tuple[SourceRecord, int]], options: ConvertOptions, desc: str
) -> Iterator[PreparedSample | SkippedSample]:
    work = functools.partial(_prepare_one, max_side=options.max_side, quality=options.jpeg_quality)
    bar = tqdm(total=len(records), desc=desc, unit="img", smoothing=0.05)
    if options.workers <= 1:
        results: Iterator = map(work, records)
        pool = None
    else:
        pool = worker_pool(options.workers)
        results = pool.imap(work, records, chunksize=16)
    try:
        for result in results:
            bar.update()
            yield result
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()


def _load_progress(
    folder: Path, fingerprint: dict[str, Any]
) -> tuple[list[_ShardProgress], ShardEntry | None]:
    """Finished files that are still intact, for ``--resume``."""
    path = folder / PROGRESS_NAME
    if not path.is_file():
        return [], None
    state = json.loads(path.read_text())
    if state["fingerprint"] != fingerprint:
        raise ConversionError(
            f"{folder} holds a conversion with other inputs or options "
            f"({state['fingerprint']} vs {fingerprint}); use another --out or delete it"
        )
    kept: list[_ShardProgress] = []
    for shard in state["shards"]:
        progress = _ShardProgress(
            ShardEntry(**shard["entry"]),
            shard["records_done"],
            [SkippedSample(**s) for s in shard["skipped"]],
            shard["boxes"],
            shard["clipped"],
            shard.get("bad_boxes", 0),
        )
        where = folder / shard["dir"] / progress.entry.name
        if not where.is_file() or sha256_file(where) != progress.entry.sha256:
            log.warning("resume: %s is missing or changed; redoing it and everything after it", where)
            break
        kept.append(progress)
    ffcv = ShardEntry(**state["ffcv"]) if state.get("ffcv") and len(kept) == len(state["shards"]) else None
    if ffcv is not None and (
        not (folder / ffcv.name).is_file() or sha256_file(folder / ffcv.name) != ffcv.sha256
    ):
        ffcv = None
    return kept, ffcv


def _save_progress(
    folder: Path,
    fingerprint: dict[str, Any],
    tar_dir: str,
    shards: list[_ShardProgress],
    ffcv: ShardEntry | None,
) -> None:
    write_json_atomic(
        folder / PROGRESS_NAME,
        {
            "fingerprint": fingerprint,
            "shards": [
                {
                    "entry": asdict(s.entry),
                    "records_done": s.records_done,
                    "dir": tar_dir,
                    "skipped": [asdict(k) for k in s.skipped],
                    "boxes": s.boxes,
                    "clipped": s.clipped,
                    "bad_boxes": s.bad_boxes,
                }
                for s in shards
            ],
            "ffcv": asdict(ffcv) if ffcv else None,
        },
    )


def _clear_stale(folder: Path, keep: set[str]) -> None:
    for path in (
        list(folder.glob("*.tar")) + list(folder.glob("*.beton")) + list(folder.glob("*" + TMP_SUFFIX))
    ):
        if path.name not in keep:
            path.unlink()


def _check_out_dir(folder: Path, options: ConvertOptions) -> Manifest | None:
    """Refuse to overwrite; with resume, return the manifest of an already finished conversion."""
    if (folder / MANIFEST_NAME).is_file():
        if not options.resume:
            raise ConversionError(
                f"{folder} already holds a finished conversion ({MANIFEST_NAME}); "
                "choose another --out, delete it, or pass --resume to keep it"
            )
        problems = verify_split(folder)
        if problems:
            raise ConversionError(
                f"{folder} is finished but does not match its manifest ({problems[0]}); "
                "delete the folder and convert again"
            )
        return read_manifest(folder)
    if (folder / PROGRESS_NAME).is_file() and not options.resume:
        raise ConversionError(
            f"{folder} holds an unfinished conversion; pass --resume to continue it or delete the folder"
        )
    return None


def convert_listing(
    listing: SourceListing, out_dir: Path, options: ConvertOptions, arguments: dict[str, Any]
) -> Manifest:
    """Write the shards of one split into ``out_dir/<split>`` and return its manifest."""
    folder = out_dir / listing.split
    folder.mkdir(parents=True, exist_ok=True)
    finished = _check_out_dir(folder, options)
    if finished is not None:
        log.info("%s is already complete; nothing to do", folder)
        return finished
    if options.max_boxes < 1 or options.shard_size_mb <= 0:
        raise ConversionError("--max-boxes must be >= 1 and --shard-size-mb > 0")
    records = ordered_records(listing, options)
    _check_keys(records)
    fingerprint = _fingerprint(listing, records, options)
    done, ffcv_entry = _load_progress(folder, fingerprint) if options.resume else ([], None)
    tar_dir = "." if FORMAT_WEBDATASET in options.formats else STAGING_NAME
    tar_folder = folder / tar_dir
    tar_folder.mkdir(exist_ok=True)
    _clear_stale(tar_folder, {s.entry.name for s in done})
    if ffcv_entry is None:
        _clear_stale(folder, {s.entry.name for s in done} if tar_dir == "." else set())

    start = done[-1].records_done if done else 0
    writer = TarShardWriter(
        tar_folder, listing.split, int(options.shard_size_mb * 2**20), first_index=len(done)
    )
    skipped: list[SkippedSample] = []
    boxes = clipped = bad_boxes = 0
    check_boxes = FORMAT_FFCV in options.formats

    def close_shard(records_done: int) -> None:
        nonlocal skipped, boxes, clipped, bad_boxes
        entry = writer.finish()
        if entry is not None:
            done.append(_ShardProgress(entry, records_done, skipped, boxes, clipped, bad_boxes))
            skipped, boxes, clipped, bad_boxes = [], 0, 0, 0
            _save_progress(folder, fingerprint, tar_dir, done, None)

    for position, result in enumerate(_prepared(records[start:], options, f"{listing.split} shards"), start):
        if isinstance(result, SkippedSample):
            if options.strict:
                raise ConversionError(f"{result.source}: {result.reason} (--strict)")
            log.warning("skipping %s: %s", result.source, result.reason)
            skipped.append(result)
            continue
        if result.bad_boxes:
            if not options.skip_bad_boxes:
                raise ConversionError(
                    f"{result.bad_boxes[0]}; fix the annotation, or pass --skip-bad-boxes to leave "
                    "such boxes out (counted in the manifest)"
                )
            log.warning("leaving out %s", "; ".join(result.bad_boxes))
            bad_boxes += len(result.bad_boxes)
        if check_boxes and len(result.boxes) > options.max_boxes:
            raise ConversionError(
                f"{result.source} has {len(result.boxes)} boxes, more than --max-boxes "
                f"{options.max_boxes}; FFCV stores a fixed number, and none is dropped: "
                f"rerun with --max-boxes {len(result.boxes)} or more"
            )
        if writer.would_overflow(result):
            close_shard(position)
        writer.add(result)
        boxes += len(result.boxes)
        clipped += result.boxes_clipped
    close_shard(len(records))  # what stays in ``skipped`` was skipped after the last sample

    tars = [s.entry for s in done]
    if not tars:
        raise ConversionError(
            f"no readable images in {listing.name} {listing.split} ({len(all_skipped(done, skipped))} "
            "skipped, listed above); nothing to write"
        )
    if FORMAT_WEBDATASET in options.formats:
        write_timm_info(folder, listing.split, tars)
    if FORMAT_FFCV in options.formats and ffcv_entry is None:
        from data_shards.writers.ffcv import write_beton  # FFCV only when asked (absent on some hosts)

        ffcv_entry = write_beton(
            folder, listing.split, [tar_folder / t.name for t in tars], options.max_boxes
        )
        _save_progress(folder, fingerprint, tar_dir, done, ffcv_entry)
    shards = (tars if FORMAT_WEBDATASET in options.formats else []) + ([ffcv_entry] if ffcv_entry else [])
    skipped_all = all_skipped(done, skipped)
    manifest = build_manifest(
        listing,
        options.formats,
        options.max_boxes,
        shards,
        total_samples=sum(t.samples for t in tars),
        total_boxes=sum(s.boxes for s in done),
        images_in=len(records),
        boxes_clipped=sum(s.clipped for s in done),
        boxes_skipped=sum(s.bad_boxes for s in done),
        skipped=skipped_all,
        arguments=arguments,
    )
    write_manifest(folder, manifest)
    (folder / PROGRESS_NAME).unlink(missing_ok=True)
    if tar_dir != ".":
        shutil.rmtree(tar_folder)
    if manifest.boxes_clipped:
        log.warning("%d box(es) reached outside their image and were clipped to it", manifest.boxes_clipped)
    if manifest.boxes_skipped:
        log.warning("%d bad box(es) left out (--skip-bad-boxes)", manifest.boxes_skipped)
    if skipped_all:
        log.warning(
            "%d image(s) skipped (listed in %s): %s",
            len(skipped_all),
            folder / MANIFEST_NAME,
            "; ".join(f"{k.source}: {k.reason}" for k in skipped_all[:5]),
        )
    return manifest
