"""``scm-shards fetch URL DIR`` and ``scm-shards upload DIR URL``: copy a converted split
between a local directory and a URL, verified, resumable.

Fetch streams every file of the split through :class:`VerifiedStream` into ``DIR/<name>.part``
and renames it once its bytes and sha256 match the manifest; an interrupted fetch continues
each file from the bytes already there (their digest is recomputed first) and skips files
that are complete. The manifest is written last, so DIR is a split only once it is whole.

Upload (``s3://`` only: an HTTP server is filled by copying files into its root) first
checks the local split against its manifest, then uploads the shards (boto3's managed
transfer: multipart for large files), each tagged with its sha256 and read back through
:class:`VerifiedStream`, and the manifest last: a reader never finds a manifest whose shards
are missing. A rerun skips shards already there with the same size and sha256 tag.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from data_shards.manifest import split_dirs, verify_split, write_manifest
from data_shards.remote import RemoteError, S3Store, child_url, open_store, s3_client, safe_name
from data_shards.remote_stream import DigestError, VerifiedStream, read_remote_manifest
from data_shards.schema import MANIFEST_NAME, ShardEntry, read_manifest
from data_shards.writers.atomic import sha256_file

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
SHA256_TAG = "sha256"


def fetch_split(url: str, directory: Path, retries: int = 5, backoff_s: float = 1.0) -> int:
    """Download the split at ``url`` into ``directory``; returns the number of files fetched."""
    store = open_store(url)
    manifest = read_remote_manifest(store, retries, backoff_s)
    directory.mkdir(parents=True, exist_ok=True)
    fetched = 0
    for entry in manifest.shards:
        target = directory / safe_name(entry.name, url)
        if target.is_file() and target.stat().st_size == entry.bytes and sha256_file(target) == entry.sha256:
            log.info("%s: already here", target)
            continue
        part = target.with_name(target.name + PART_SUFFIX)
        resume = part if part.is_file() and 0 < part.stat().st_size <= entry.bytes else None
        try:
            with open(part, "ab" if resume else "wb") as sink:
                stream = VerifiedStream(store, entry, retries, backoff_s, sink=sink, resume_from=resume)
                try:
                    stream.finish()
                finally:
                    stream.close()
        except DigestError as err:  # the bytes kept so far cannot be trusted: start over next time
            part.unlink()
            raise RemoteError(f"{err.message} ({part.name} deleted; run the fetch again)") from None
        os.replace(part, target)
        fetched += 1
        log.info("%s: %d bytes, sha256 verified", target, entry.bytes)
    write_manifest(directory, manifest)
    return fetched


def upload_splits(directory: Path, url: str, retries: int = 5, backoff_s: float = 1.0) -> int:
    """Upload the split at ``directory`` to ``url`` (or each split folder under it to
    ``url/<folder>``); returns the number of files uploaded."""
    if urlsplit(url).scheme != "s3":
        raise RemoteError(
            f"{url}: upload writes to s3:// only; to serve a split over HTTP copy its folder into the "
            "server's document root"
        )
    folders = split_dirs(directory)
    single = folders == [directory]
    return sum(
        _upload_split(folder, S3Store(url if single else child_url(url, folder.name)), retries, backoff_s)
        for folder in folders
    )


def _upload_split(folder: Path, store: S3Store, retries: int, backoff_s: float) -> int:
    problems = verify_split(folder)
    if problems:
        raise RemoteError(f"{folder} does not match its manifest ({problems[0]}); run `scm-shards verify`")
    manifest = read_manifest(folder)
    store.call(store.url, "head_bucket")  # a missing bucket or credentials: one clear line first
    uploaded = 0
    for entry in manifest.shards:
        if _already_there(store, entry):
            log.info("%s: already there", store.url_of(entry.name))
            continue
        _upload_file(store, folder / entry.name, entry.name, {SHA256_TAG: entry.sha256})
        stream = VerifiedStream(store, entry, retries, backoff_s)
        try:
            stream.finish()
        finally:
            stream.close()
        uploaded += 1
        log.info("%s: %d bytes, read back and verified", store.url_of(entry.name), entry.bytes)
    _upload_file(store, folder / MANIFEST_NAME, MANIFEST_NAME, {})
    return uploaded + 1


def _already_there(store: S3Store, entry: ShardEntry) -> bool:
    head = store.head(entry.name)
    return (
        head is not None
        and head["ContentLength"] == entry.bytes
        and head.get("Metadata", {}).get(SHA256_TAG) == entry.sha256
    )


def _upload_file(store: S3Store, path: Path, name: str, metadata: dict[str, str]) -> None:
    from boto3.s3.transfer import S3Transfer

    url = store.url_of(name)
    try:
        S3Transfer(s3_client()).upload_file(
            str(path), store.bucket, store.key_of(name), extra_args={"Metadata": metadata}
        )
    except Exception as err:  # boto3's transfer wraps client errors in its own
        raise RemoteError(
            f"{url}: upload failed ({type(err).__name__}: {err}); run the upload again"
        ) from None
