"""Real servers on 127.0.0.1 for the remote-data tests and the loader benchmark: nginx
serving a folder over HTTP, and moto's standalone S3-compatible server.

Each runs in the foreground as a child process with its own configuration and files in a
temporary folder, on a free port, and is stopped (by its own process id) on exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@contextmanager
def _running(cmd: list[str], port: int, what: str, workdir: Path, env: dict | None = None) -> Iterator[None]:
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_port(port, proc, what, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def nginx_serving(root: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving the files under ``root`` (needs the nginx binary)."""
    binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if binary is None:
        raise RuntimeError("nginx is not installed; run `make setup` (Debian package nginx)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nginx-") as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=Path(root).resolve()))
        cmd = [binary, "-p", prefix, "-c", str(conf), "-e", f"{prefix}/error.log"]
        with _running(cmd, port, "nginx", Path(prefix)):
            yield f"http://127.0.0.1:{port}"


@contextmanager
def s3_server() -> Iterator[str]:
    """The endpoint URL of a fresh moto S3 server (``moto[server]``); every credential works."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="moto-") as workdir:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        with _running(cmd, port, "moto S3 server", Path(workdir)):
            yield f"http://127.0.0.1:{port}"


def s3_environment(endpoint: str) -> dict[str, str]:
    """AWS_* variables that point boto3 at a test server with throw-away credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def create_bucket(endpoint: str, bucket: str) -> None:
    """Make ``bucket`` on the server at ``endpoint`` (test credentials)."""
    import boto3

    env = s3_environment(endpoint)
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    ).create_bucket(Bucket=bucket)
