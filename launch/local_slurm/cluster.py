"""A real SLURM cluster on one host: munge, slurmctld and two slurmd (node1, node2).

Everything lives under one state directory: the rendered slurm.conf, a munge key and
socket, pid files, logs and spools. By default it is ``/var/tmp/scm-dist-slurm-<hash of the
checkout path>``: outside the checkout, because munged runs as the munge user and cannot
traverse a private home (mode 0700 or 0750), and one per checkout, so two clones keep
apart (they share the fixed ports, though: run one cluster at a time).
Daemons listen on loopback on non-default ports and are stopped by their pid files, so
the cluster never touches a system-wide SLURM. Clients find it through ``SLURM_CONF``
(see :meth:`LocalSlurm.client_env`). Starting needs root (slurmd runs jobs as their user).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_PARENT = Path("/var/tmp")


def default_state_dir(checkout: Path = REPO_ROOT) -> Path:
    """The state directory of the cluster of ``checkout``: outside it, named by its path's hash."""
    digest = hashlib.sha256(str(Path(checkout).resolve()).encode()).hexdigest()[:12]
    return STATE_PARENT / f"scm-dist-slurm-{digest}"


DEFAULT_STATE_DIR = default_state_dir()
TEMPLATE = Path(__file__).with_name("slurm.conf.in")
NODES = ("node1", "node2")
DAEMONS = ("munged", "slurmctld", "slurmd")


class LocalSlurmError(RuntimeError):
    """The local cluster could not be started or stopped; the message says why."""


def missing_binaries() -> list[str]:
    """SLURM and munge programs this host lacks (empty when the cluster can run here)."""
    needed = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol", "srun"]
    return [name for name in needed if _find(name) is None]


def _find(name: str) -> str | None:
    """The full path of program ``name`` (also searched in the sbin folders), or None."""
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _which(name: str) -> str:
    """The full path of program ``name``; a clear error when this host lacks it."""
    found = _find(name)
    if found is None:
        raise LocalSlurmError(f"{name} not found on PATH or in /usr/sbin, /sbin: run `make setup`")
    return found


def _pid_alive(pid_file: Path) -> int | None:
    """The pid written in ``pid_file`` when that process still runs, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
        try:
            os.kill(pid, 0)
        except PermissionError:
            return pid  # alive, started by root; we may only look
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state == "Z" else pid  # an exited daemon nobody reaped yet


def _log_tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalSlurm:
    """One local cluster: where its state lives and which ports it uses."""

    state_dir: Path = DEFAULT_STATE_DIR
    ctld_port: int = 16817
    node_ports: tuple[int, int] = (17001, 17002)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    # paths ---------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.state_dir / "slurm.conf"

    @property
    def munge_dir(self) -> Path:
        return self.state_dir / "munge"

    def _pid_files(self) -> dict[str, Path]:
        run = self.state_dir / "run"
        files = {"munged": self.munge_dir / "munged.pid", "slurmctld": run / "slurmctld.pid"}
        files.update({f"slurmd-{n}": run / f"slurmd-{n}.pid" for n in NODES})
        return files

    def client_env(self) -> dict[str, str]:
        """Environment for SLURM clients (sbatch, squeue, submitit) to reach this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # lifecycle -----------------------------------------------------------------------
    def running(self) -> dict[str, int | None]:
        """Pid of each daemon, None for those not running."""
        return {name: _pid_alive(path) for name, path in self._pid_files().items()}

    def up(self, timeout_s: float = 60.0) -> None:
        """Start whatever is not running yet and wait until both nodes are idle."""
        missing = missing_binaries()
        if missing:
            raise LocalSlurmError(
                f"missing programs: {', '.join(missing)}; install the Debian packages "
                "slurm-wlm and munge (`make setup` does it)"
            )
        if os.geteuid() != 0:
            raise LocalSlurmError(
                "the local SLURM cluster must be started as root "
                "(slurmd runs jobs as their owner); try `sudo make slurm-up`"
            )
        self._prepare_state_dir()
        for sub in ("run", "log", "ctld", *(f"spool/{n}" for n in NODES)):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._ensure_hosts()
        if self._write_conf() and any(self.running().values()):
            self.down()  # daemons read slurm.conf at start: restart them on the new one
        pids = self.running()
        if pids["munged"] is None:
            self._start_munge()
        if pids["slurmctld"] is None:
            self._run_daemon(
                [_which("slurmctld"), "-f", str(self.conf)], "slurmctld", self.state_dir / "log/slurmctld.log"
            )
        for node in NODES:
            if pids[f"slurmd-{node}"] is None:
                self._run_daemon(
                    [_which("slurmd"), "-f", str(self.conf), "-N", node],
                    f"slurmd-{node}",
                    self.state_dir / f"log/slurmd-{node}.log",
                )
        self._wait_idle(timeout_s)

    def down(self, timeout_s: float = 20.0) -> list[str]:
        """Stop the daemons by their pid files (slurmd first); returns the names stopped."""
        stopped = []
        order = [f"slurmd-{n}" for n in NODES] + ["slurmctld", "munged"]
        files = self._pid_files()
        if _pid_alive(files["slurmctld"]) is not None:
            self._cancel_all_jobs(timeout_s)  # job steps would outlive their slurmd
        for name in order:
            pid = _pid_alive(files[name])
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _pid_alive(files[name]) == pid and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid_alive(files[name]) == pid:
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
        return stopped

    # helpers -------------------------------------------------------------------------
    def _prepare_state_dir(self) -> None:
        """Create the state directory (root's, mode 0755) and check that munged can reach it."""
        self.state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        info = self.state_dir.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise LocalSlurmError(
                f"{self.state_dir} is not a directory owned by this user and writable only by it; "
                f"remove it (`sudo rm -rf {self.state_dir}`) and run again"
            )
        for folder in (self.state_dir, *self.state_dir.parents):
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise LocalSlurmError(
                    f"munged runs as the munge user and cannot reach {self.state_dir}: {folder} has mode "
                    f"{stat.S_IMODE(mode):04o} (others may not enter it). Use a --state-dir outside "
                    f"private folders (the default is under {STATE_PARENT}) or `chmod o+x {folder}`"
                )

    def _squeue_ids(self) -> list[str]:
        out = subprocess.run(
            ["squeue", "-h", "-o", "%A"], capture_output=True, text=True, env=self.client_env(), timeout=30
        )
        return out.stdout.split()

    def _cancel_all_jobs(self, timeout_s: float) -> None:
        jobs = self._squeue_ids()
        if not jobs:
            return
        subprocess.run(["scancel", *jobs], capture_output=True, env=self.client_env())
        deadline = time.monotonic() + timeout_s
        while self._squeue_ids() and time.monotonic() < deadline:
            time.sleep(0.5)

    def _ensure_hosts(self) -> None:
        """node1/node2 must resolve (slurmd looks its own name up); add them to /etc/hosts."""
        unresolved = []
        for node in NODES:
            try:
                socket.gethostbyname(node)
            except OSError:
                unresolved.append(node)
        if unresolved:
            with open("/etc/hosts", "a") as hosts:
                hosts.write(f"127.0.0.1 {' '.join(unresolved)}  # scm-dist local SLURM\n")

    def _write_conf(self) -> bool:
        """Render slurm.conf; True when its content changed."""
        mem_kb = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")
            )
        )
        values = dict(
            hostname=socket.gethostname(),
            state_dir=str(self.state_dir),
            ctld_port=self.ctld_port,
            first_node_port=self.node_ports[0],
            second_node_port=self.node_ports[1],
            cpus=os.cpu_count() or 1,
            memory_mb=max(1, mem_kb // 1024 // (2 * len(NODES))),
        )
        text = string.Template(TEMPLATE.read_text()).substitute(values)
        if self.conf.exists() and self.conf.read_text() == text:
            return False
        self.conf.write_text(text)
        return True

    def _start_munge(self) -> None:
        """munged runs as the munge user with its own key and socket under the state dir."""
        try:
            munge_user = pwd.getpwnam("munge")
        except KeyError as err:
            raise LocalSlurmError("no 'munge' user: reinstall the Debian package munge") from err
        d = self.munge_dir
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, munge_user.pw_uid, munge_user.pw_gid)
        d.chmod(0o755)  # munged requires the socket directory to be traversable by all
        key = d / "munge.key"
        if not key.exists():
            subprocess.run([_which("mungekey"), "--create", "--keyfile", str(key)], check=True)
        os.chown(key, munge_user.pw_uid, munge_user.pw_gid)
        key.chmod(0o400)
        (d / "munge.socket").unlink(missing_ok=True)
        cmd = [
            _which("munged"),
            f"--socket={d / 'munge.socket'}",
            f"--key-file={key}",
            f"--log-file={d / 'munged.log'}",
            f"--pid-file={d / 'munged.pid'}",
            f"--seed-file={d / 'munged.seed'}",
        ]
        self._run_daemon(["runuser", "-u", "munge", "--", *cmd], "munged", d / "munged.log")

    def _run_daemon(self, cmd: list[str], name: str, log: Path) -> None:
        """Start a self-daemonizing program and wait for its pid file to name a live process."""
        result = subprocess.run(cmd, capture_output=True, text=True)
        pid_file = self._pid_files()[name]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if _pid_alive(pid_file) is not None:
                return
            time.sleep(0.2)
        raise LocalSlurmError(
            f"{name} did not start ({' '.join(cmd)} exited {result.returncode}).\n"
            f"{result.stderr.strip()}\nlast lines of {log}:\n{_log_tail(log)}"
        )

    def _sinfo(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t"],
            capture_output=True,
            text=True,
            env=self.client_env(),
            timeout=30,
        )

    def _wait_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        seen = ""
        while time.monotonic() < deadline:
            out = self._sinfo()
            seen = (out.stdout + out.stderr).strip()
            states = dict(line.split() for line in out.stdout.splitlines() if len(line.split()) == 2)
            if all(states.get(n, "").startswith(("idle", "mix", "alloc")) for n in NODES):
                return
            if any(states.get(n, "").startswith(("down", "drain")) for n in NODES):
                for node in NODES:  # a node left down by an earlier run: put it back
                    subprocess.run(
                        ["scontrol", "update", f"nodename={node}", "state=resume"],
                        capture_output=True,
                        env=self.client_env(),
                    )
            time.sleep(0.5)
        raise LocalSlurmError(
            f"nodes not idle after {timeout_s:.0f} s; sinfo says:\n{seen}\n"
            f"slurmctld log:\n{_log_tail(self.state_dir / 'log/slurmctld.log')}"
        )
