"""Servers and helpers of the remote-data tests: served copies of real splits, and a small
real HTTP server on 127.0.0.1 that drops connections or answers 503 on purpose."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import torch

from scm_dist.data import build_eval_loader, build_train_loader
from scm_dist.data.device_input import HostImages
from scm_dist.data.remote_servers import s3_environment


def copy_split(split_dir: Path, root: Path, name: str = "val") -> Path:
    """``root/name``: the WebDataset files and manifest of a split (FFCV left out)."""
    target = root / name
    target.mkdir(parents=True)
    for path in split_dir.iterdir():
        if path.suffix in (".tar", ".json"):
            shutil.copy(path, target / path.name)
    return target


def s3_client(endpoint: str):
    env = s3_environment(endpoint)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def put_split(endpoint: str, bucket: str, prefix: str, split_dir: Path) -> str:
    """Upload a split's WebDataset files with plain boto3 (not our upload); its URL."""
    client = s3_client(endpoint)
    for path in split_dir.iterdir():
        if path.suffix in (".tar", ".json"):
            client.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    return f"s3://{bucket}/{prefix}"


def eval_batches(cfg, world: int) -> list[list]:
    """Every rank's eval batches (as plain tensors and lists) for a world of ``world``."""
    return [
        [(b.images, b.labels, [x.tolist() for x in b.boxes], b.keys, b.sample_ids.tolist()) for b in loader]
        for loader in (build_eval_loader(cfg, rank=r, world_size=world) for r in range(world))
    ]


def same_batches(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, HostImages):  # train batches: compare the model's input
                u, v = u.to_model("cpu"), v.to_model("cpu")
            if isinstance(u, torch.Tensor):
                if not torch.equal(u, v):
                    return False
            elif u != v:
                return False
    return True


def same_ranks(a: list, b: list) -> bool:
    """The same batches on every rank."""
    return len(a) == len(b) and all(same_batches(x, y) for x, y in zip(a, b))


def train_epochs(cfg, epochs: int = 2, seed: int = 5) -> list:
    """Rank 0 of 2: its batches (images, labels) of ``epochs`` epochs."""
    loader = build_train_loader(cfg, rank=0, world_size=2, seed=seed)
    out = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        out += [(images, labels) for images, labels in loader]
    return out


class Misbehaviour:
    """What the flaky server does: ``drop_first`` GETs of each shard without Range send half
    the body then close the connection; ``always_drop``: every GET of a shard does that;
    ``fail_503``: the first GET of each shard answers 503."""

    def __init__(self, drop_first: bool = False, always_drop: bool = False, fail_503: bool = False) -> None:
        self.drop_first, self.always_drop, self.fail_503 = drop_first, always_drop, fail_503
        self.seen: set[str] = set()
        self.dropped = self.failed = self.ranged = 0
        self.lock = threading.Lock()


def _handler(root: Path, mis: Misbehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            name = self.path.lstrip("/")
            path = root / name
            if "/" in name or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            shard = path.suffix == ".tar"
            with mis.lock:
                first = name not in mis.seen
                mis.seen.add(name)
            if shard and mis.fail_503 and first:
                with mis.lock:
                    mis.failed += 1
                self.send_error(503)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if match:
                start = int(match.group(1))
                with mis.lock:
                    mis.ranged += 1
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if shard and (mis.always_drop or (mis.drop_first and first)):
                with mis.lock:
                    mis.dropped += 1
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def flaky_server(root: Path, mis: Misbehaviour) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving ``root``'s files as ``mis`` says."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, mis))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def without_aws_credentials(endpoint: str, home: Path) -> dict[str, str]:
    """An environment with the endpoint but no credentials anywhere boto3 looks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=str(home / "none"),
        AWS_CONFIG_FILE=str(home / "none"),
    )
    return env
