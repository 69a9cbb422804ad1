"""One writer per output_dir (issue 19, item 4): real processes, real lock files."""

import json
import multiprocessing as mp
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from safety_workers import hold_lock, train_argv

from scm_dist.cli import train_main
from scm_dist.engine.run_lock import LOCK_NAME, RunLock, RunLockedError


def _start_holder(directory: Path, seconds: float) -> mp.Process:
    ready = directory.parent / f"{directory.name}.ready"
    proc = mp.get_context("spawn").Process(target=hold_lock, args=(str(directory), seconds, str(ready)))
    proc.start()
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.is_alive() and time.monotonic() < deadline, "the lock holder did not start"
        time.sleep(0.1)
    return proc


def test_second_writer_is_refused_until_the_first_exits(tmp_path):
    out = tmp_path / "run"
    holder = _start_holder(out, seconds=3)
    with pytest.raises(
        RunLockedError, match=rf"in use by process {holder.pid} on host {socket.gethostname()}"
    ):
        RunLock(out).acquire()
    holder.join(60)
    assert holder.exitcode == 0 and not (out / LOCK_NAME).exists()  # released on exit
    lock = RunLock(out)
    lock.acquire()
    lock.release()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = _start_holder(out, seconds=600)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    assert (out / LOCK_NAME).exists()  # kill -9: nothing released it
    lock = RunLock(out)
    lock.acquire()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_of_another_host_is_stale_only_without_heartbeat(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps({"host": "other-node", "pid": 1, "token": "x"}))
    with pytest.raises(RunLockedError, match="process 1 on host other-node"):
        RunLock(tmp_path, stale_after_s=60).acquire()
    old = time.time() - 120
    os.utime(path, (old, old))
    lock = RunLock(tmp_path, stale_after_s=60)
    lock.acquire()
    assert json.loads(path.read_text())["host"] == socket.gethostname()
    lock.release()


def test_heartbeat_refreshes_the_lock(tmp_path):
    lock = RunLock(tmp_path, heartbeat_s=0.2)
    lock.acquire()
    old = time.time() - 1000
    os.utime(tmp_path / LOCK_NAME, (old, old))
    time.sleep(1.0)
    assert time.time() - (tmp_path / LOCK_NAME).stat().st_mtime < 5
    lock.release()


def test_scm_train_refuses_an_output_dir_in_use(synthetic_shards, tmp_path):
    out = tmp_path / "run"
    holder = _start_holder(out, seconds=600)
    try:
        argv = train_argv(synthetic_shards, out)
        with pytest.raises(SystemExit) as exit_:
            train_main(argv)
        message = str(exit_.value.code)
        assert message.startswith("scm-train: error:") and "\n" not in message
        assert f"in use by process {holder.pid}" in message
        assert not (out / "checkpoints").exists() and not (out / "config.yaml").exists()
    finally:
        holder.kill()
        holder.join(30)


def test_lock_of_an_earlier_incarnation_of_a_requeued_slurm_job_is_stale(tmp_path, monkeypatch):
    path = tmp_path / LOCK_NAME
    holder = {"host": "other-node", "pid": 1, "token": "x", "slurm_job": "77", "slurm_restart": 0}
    path.write_text(json.dumps(holder))
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    with pytest.raises(RunLockedError):  # the same incarnation: another step of the live job
        RunLock(tmp_path).acquire()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.release()
