"""Split directories at URLs: ``http(s)://host/prefix/split`` (read) and ``s3://bucket/prefix/split``
(read and write, AWS S3 or any S3-compatible store).

A store opens one object of the split as a byte stream from an offset (HTTP ``Range``,
S3 ``GetObject`` with ``Range``) and says how long the whole object is. Its errors are one
line that names the URL: :class:`TransientError` (connection reset or refused, timeouts,
5xx, throttling) may be retried by the caller; any other :class:`RemoteError` (403, 404,
missing credentials, no such bucket) is final and says what to check.

S3 goes through boto3, which finds credentials, region and endpoint the usual way:
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and
the shared config files, instance roles; ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``)
for an S3-compatible store. Nothing here writes them anywhere; URLs carrying credentials
(``user:password@``) are refused so that they never reach configs, logs or results.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

URL_SCHEMES = ("http", "https", "s3")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TIMEOUT_S = 60.0
HTTP_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}
S3_TRANSIENT = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
S3_CREDENTIALS_HINT = (
    "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) "
    "and that they may read the bucket"
)


class RemoteError(RuntimeError):
    """A final error of a remote read or write: one line naming the URL and what to check.

    ``str()`` is the message alone even after libraries append to ``args`` (webdataset's
    tar iterator does) so that messages stay one readable line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TransientError(RemoteError):
    """A failure worth retrying (reset, refused, timeout, 5xx, throttling)."""


def is_url(location: str | os.PathLike) -> bool:
    """Whether a data location is a URL this module reads (else a local path)."""
    return urlsplit(str(location)).scheme in URL_SCHEMES


def safe_name(name: str, where: str) -> str:
    """A file name from a manifest, checked before it reaches a URL or the file system."""
    if not SAFE_NAME.fullmatch(name):
        raise RemoteError(f"{where}: the manifest lists a file {name!r}, which is not a plain file name")
    return name


class Body(Protocol):
    def read(self, size: int = -1) -> bytes: ...
    def close(self) -> None: ...


class Store(Protocol):
    """The objects of one split prefix."""

    @property
    def url(self) -> str: ...

    def url_of(self, name: str) -> str: ...
    def open(self, name: str, offset: int = 0) -> tuple[Body, int]: ...


def _check_location(url: str) -> None:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise RemoteError(
            f"{parts.scheme}://{parts.hostname}/...: the URL carries credentials, which would end up "
            "in configs and logs; use AWS_* variables or an AWS profile (s3://), or a server that "
            "needs none (http)"
        )
    if not parts.hostname:
        raise RemoteError(
            f"{url}: no host / bucket in the URL; expected s3://bucket/prefix or http://host/prefix"
        )


class HttpStore:
    """A split served over HTTP(S) (any static file server: nginx, a CDN, ...); read only."""

    def __init__(self, url: str) -> None:
        _check_location(url)
        self.url = url.rstrip("/")

    def url_of(self, name: str) -> str:
        return f"{self.url}/{safe_name(name, self.url)}"

    def open(self, name: str, offset: int = 0) -> tuple[Body, int]:
        url = self.url_of(name)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
        except urllib.error.HTTPError as err:
            raise _http_error(url, err.code, offset) from None
        except (OSError, http.client.HTTPException) as err:
            raise TransientError(f"{url}: cannot connect ({_reason(err)})") from None
        if offset and response.status != 206:  # the server ignored Range: skip to the offset
            _discard(response, offset)
            return _HttpBody(url, response), int(response.headers.get("Content-Length", -1))
        return _HttpBody(url, response), _http_total(response, offset)


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _http_error(url: str, code: int, offset: int) -> RemoteError:
    if code in (401, 403):
        return RemoteError(
            f"{url}: HTTP {code} (access denied); check that the server lets this host read the "
            "split directory (its access rules / credentials)"
        )
    if code == 404:
        return RemoteError(
            f"{url}: HTTP 404 (not found); check the URL: it must be the split directory that "
            "holds manifest.json and the shards (e.g. https://host/prefix/train)"
        )
    if code == 416:
        return RemoteError(f"{url}: the object is shorter than {offset} bytes (replaced?); upload it again")
    if code in HTTP_TRANSIENT:
        return TransientError(f"{url}: HTTP {code} (server error)")
    return RemoteError(f"{url}: HTTP {code}")


def _http_total(response: Any, offset: int) -> int:
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length is not None else -1


def _discard(body: Any, count: int) -> None:
    while count:
        chunk = body.read(min(count, 1 << 20))
        if not chunk:
            return
        count -= len(chunk)


class _HttpBody:
    def __init__(self, url: str, response: Any) -> None:
        self.url, self.response = url, response

    def read(self, size: int = -1) -> bytes:
        try:
            return self.response.read(size)
        except (OSError, http.client.HTTPException) as err:
            raise TransientError(f"{self.url}: connection lost ({_reason(err)})") from None

    def close(self) -> None:
        self.response.close()


_S3_CLIENTS: dict[tuple, Any] = {}
_S3_SESSIONS: dict[tuple, Any] = {}


def s3_client() -> Any:
    """This process's boto3 S3 client for the current ``AWS_*`` environment (boto3 clients
    must not cross a fork). The session is shared: DataLoader workers forked after the
    manifest was read reuse its loaded service model (a new session costs about 0.1 s of CPU
    per worker and epoch). Retries are off here: the callers retry with their own bound and
    backoff; botocore's own response checksum is off too (every byte is checked against the
    manifest's sha256)."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (os.getpid(), env)
    if key not in _S3_CLIENTS:
        import boto3
        from botocore.config import Config

        if env not in _S3_SESSIONS:
            _S3_SESSIONS.clear()
            _S3_SESSIONS[env] = boto3.session.Session()
        config = Config(
            retries={"total_max_attempts": 1},
            connect_timeout=TIMEOUT_S,
            read_timeout=TIMEOUT_S,
            response_checksum_validation="when_required",
        )
        _S3_CLIENTS.clear()
        _S3_CLIENTS[key] = _S3_SESSIONS[env].client("s3", config=config)
    return _S3_CLIENTS[key]


@dataclass(frozen=True)
class S3Store:
    """A split under ``s3://bucket/prefix`` (AWS or S3-compatible, see the module docstring)."""

    url: str

    def __post_init__(self) -> None:
        _check_location(self.url)
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @property
    def bucket(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def prefix(self) -> str:
        path = urlsplit(self.url).path.strip("/")
        return f"{path}/" if path else ""

    def url_of(self, name: str) -> str:
        return f"{self.url}/{safe_name(name, self.url)}"

    def key_of(self, name: str) -> str:
        return self.prefix + safe_name(name, self.url)

    def open(self, name: str, offset: int = 0) -> tuple[Body, int]:
        url = self.url_of(name)
        kwargs = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.call(url, "get_object", Key=self.key_of(name), **kwargs)
        total = response["ContentLength"] + offset
        if "ContentRange" in response:
            total = int(response["ContentRange"].rsplit("/", 1)[1])
        return _S3Body(url, response["Body"]), total

    def head(self, name: str) -> dict[str, Any] | None:
        """The object's size and metadata, or None when it does not exist."""
        url = self.url_of(name)
        try:
            return self.call(url, "head_object", Key=self.key_of(name))
        except RemoteError as err:
            if "not found" in err.message:
                return None
            raise

    def call(self, url: str, method: str, **kwargs: Any) -> Any:
        """``client.method(Bucket=..., **kwargs)`` with its errors as one-line RemoteErrors."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        try:
            return getattr(s3_client(), method)(Bucket=self.bucket, **kwargs)
        except (NoCredentialsError, PartialCredentialsError):
            raise RemoteError(
                f"{url}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "or AWS_PROFILE (and AWS_ENDPOINT_URL for an S3-compatible store)"
            ) from None
        except ClientError as err:
            raise _s3_error(url, self.bucket, err, method) from None
        except BotoCoreError as err:  # connection refused / reset, timeouts
            raise TransientError(f"{url}: cannot reach the S3 endpoint ({type(err).__name__})") from None


def _s3_error(url: str, bucket: str, err: Any, method: str) -> RemoteError:
    code = str(err.response.get("Error", {}).get("Code", ""))
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    if code == "NoSuchBucket" or (method == "head_bucket" and status == 404):
        return RemoteError(
            f"{url}: bucket {bucket!r} does not exist at {endpoint}; check the bucket name "
            "(and AWS_ENDPOINT_URL for an S3-compatible store)"
        )
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return RemoteError(
            f"{url}: not found; check the prefix: it must be the split directory that holds "
            "manifest.json and the shards (e.g. s3://bucket/prefix/train)"
        )
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status == 403:
        return RemoteError(f"{url}: access denied ({code}); {S3_CREDENTIALS_HINT}")
    if code in ("InvalidRange", "416") or status == 416:
        return RemoteError(f"{url}: the object is shorter than the manifest says (replaced?); upload again")
    if code in S3_TRANSIENT or status >= 500:
        return TransientError(f"{url}: S3 error {code or status}")
    return RemoteError(f"{url}: S3 error {code or status}")


class _S3Body:
    def __init__(self, url: str, body: Any) -> None:
        self.url, self.body = url, body

    def read(self, size: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return self.body.read(size)
        except (OSError, BotoCoreError, http.client.HTTPException) as err:
            raise TransientError(f"{self.url}: connection lost ({type(err).__name__})") from None
        except Exception as err:  # urllib3's ProtocolError / ReadTimeoutError under botocore
            if type(err).__module__.startswith("urllib3"):
                raise TransientError(f"{self.url}: connection lost ({type(err).__name__})") from None
            raise

    def close(self) -> None:
        self.body.close()


def open_store(url: str) -> HttpStore | S3Store:
    """The store of a split URL."""
    scheme = urlsplit(url).scheme
    if scheme == "s3":
        return S3Store(url)
    if scheme in ("http", "https"):
        return HttpStore(url)
    raise ValueError(f"{url}: not a URL this reads (schemes: {', '.join(URL_SCHEMES)})")


def child_url(url: str, name: str) -> str:
    """``url/name`` for a split folder name (checked like a shard name)."""
    return f"{url.rstrip('/')}/{safe_name(name, url)}"


class FileStore:
    """A local directory behind the same interface (a shard cache, a downloaded split)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.url = str(directory)

    def url_of(self, name: str) -> str:
        return os.path.join(self.url, safe_name(name, self.url))

    def open(self, name: str, offset: int = 0) -> tuple[Body, int]:
        path = self.url_of(name)
        try:
            f = open(path, "rb")  # closed by the stream that reads it
        except FileNotFoundError:
            raise RemoteError(f"{path}: missing") from None
        f.seek(offset)
        return f, os.fstat(f.fileno()).st_size
