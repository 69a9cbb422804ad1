"""One writer per output directory: an O_EXCL lock file with hostname, pid and a heartbeat.

``fcntl``/``flock`` locks are not reliable across nodes on network file systems (NFS,
Lustre, GPFS differ), so the lock is a file created with ``O_CREAT | O_EXCL`` (atomic on
them) holding ``{"host", "pid", "token"}``, whose mtime a daemon thread refreshes every
``heartbeat_s``. A lock is stale when its process is gone (same host: the pid is dead;
another host: no heartbeat for ``stale_after_s``; or an earlier incarnation of this
requeued SLURM job, which SLURM has ended before restarting it); a stale lock is taken over,
a live one refuses the second writer with a message that names the holder. Released on exit.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from .safe_io import RunStateError

log = logging.getLogger(__name__)
LOCK_NAME = ".scm-dist.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


class RunLockedError(RunStateError):
    """Another live process writes to this output directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


class RunLock:
    """The lock on ``directory`` (acquire with :meth:`acquire`, release with :meth:`release`)."""

    def __init__(
        self, directory: str | Path, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S
    ) -> None:
        self.path = Path(directory) / LOCK_NAME
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": uuid.uuid4().hex,
            "slurm_job": os.environ.get("SLURM_JOB_ID", ""),
            "slurm_restart": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written, or garbage: judged by its age alone
        return holder if isinstance(holder, dict) else {}

    def _stale_reason(self, holder: dict) -> str | None:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return "gone"
        job = self.owner["slurm_job"]
        if (
            job
            and holder.get("slurm_job") == job
            and holder.get("slurm_restart", 0) < self.owner["slurm_restart"]
        ):
            return f"SLURM job {job} was requeued"
        if holder.get("host") == self.owner["host"] and isinstance(holder.get("pid"), int):
            return None if _pid_alive(holder["pid"]) else f"process {holder['pid']} is gone"
        if age > self.stale_after_s:
            return f"no heartbeat for {age:.0f} s"
        return None

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(self.owner))
        return True

    def _break(self, holder: dict, reason: str) -> None:
        """Move a stale lock aside; if another process replaced it meanwhile, put it back."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{self.owner['token']}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError):
            moved = {}
        if holder and moved.get("token") != holder.get("token"):
            try:  # we took a fresh lock of someone else: restore it
                os.link(aside, self.path)
            except FileExistsError:
                pass
        else:
            log.warning("taking over the stale lock %s of %s (%s)", self.path, holder or "?", reason)
        aside.unlink(missing_ok=True)

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLockedError` naming its holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            if self._create():
                break
            holder = self._read()
            if holder is None:
                continue  # released meanwhile
            reason = self._stale_reason(holder)
            if reason is None:
                who = f"process {holder.get('pid', '?')} on host {holder.get('host', '?')}"
                raise RunLockedError(
                    f"{self.path.parent} is in use by {who} (lock file {self.path}): wait for it to "
                    "finish, stop it, or use another train.output_dir"
                )
            self._break(holder, reason)
        else:
            raise RunLockedError(f"could not take the lock {self.path}: it changes hands too often")
        self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()
        atexit.register(self.release)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                log.error("the lock %s disappeared; another run may write here", self.path)

    def release(self) -> None:
        """Remove the lock if it is still ours (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        holder = self._read()
        if holder and holder.get("token") == self.owner["token"]:
            self.path.unlink(missing_ok=True)
        atexit.unregister(self.release)
