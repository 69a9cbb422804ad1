"""Interrupting or killing a real `scm-shards convert` leaves nothing running or half-written:
Ctrl-C (SIGINT to the whole foreground process group, as a terminal sends it) stops every
worker promptly, and SIGKILL of the command while the .beton is written leaves no FFCV
writer process, temporary file or shared-memory block behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from shard_fixtures import convert_folder_args

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _dataset(root: Path, count: int, side: int) -> Path:
    """``count`` copies of one large noisy PNG in two classes (slow enough to decode)."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), np.uint8), (5, 5), 1)
    data = cv2.imencode(".png", image)[1].tobytes()
    for i in range(count):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:04d}.png").write_bytes(data)
    return root


def _state(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (state := _state(int(entry.name))) is not None:
            parents[int(entry.name)] = state[0]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if (state := _state(pid)) is not None and state[1] != "Z"}


def _wait_until(condition, timeout: float, step: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _convert(root: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "data_shards", *convert_folder_args(root, out, *extra)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell job gets
    )


def _interrupt_once(root: Path, out: Path, delay: float) -> None:
    proc = _convert(root, out, "--workers", "2", "--max-side", "600", "--shard-size-mb", "0.3")
    seen: set[int] = set()

    def started() -> bool:
        seen.update(_descendants(proc.pid))
        return len(seen) >= 2 and any((out / "val").glob("*.tar*"))

    assert _wait_until(started, 120), "the conversion never started its workers"
    time.sleep(delay)
    seen.update(_descendants(proc.pid))
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"scm-shards convert still runs 20 s after Ctrl-C (workers {sorted(seen)})")
    err = proc.stderr.read().decode()
    assert code == 130 and "interrupted" in err and "--resume" in err, (code, err[-2000:])
    assert _wait_until(lambda: not _alive(seen), 10), f"left running: {_alive(seen)}"


def test_ctrl_c_stops_every_worker_promptly(tmp_path):
    root = _dataset(tmp_path / "src", 160, 700)
    for attempt in range(4):  # interrupt at different moments
        _interrupt_once(root, tmp_path / f"out{attempt}", 0.2 * attempt)


def _kill_while_writing(root: Path, out: Path) -> bool:
    """SIGKILL the conversion once its .beton.tmp exists; False when the writer had already
    finished (nothing to check)."""
    tmp = out / "val" / "val.beton.tmp"
    shm_before = set(os.listdir("/dev/shm"))
    proc = _convert(root, out, "--workers", "2", "--jpeg-quality", "100", "--shard-size-mb", "2")
    assert _wait_until(tmp.exists, 300), proc.stderr.read().decode()[-2000:]
    helpers = _descendants(proc.pid)
    shm_new = {n for n in set(os.listdir("/dev/shm")) - shm_before if n.startswith("psm_")}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if (out / "val" / "val.beton").exists():
        return False
    assert helpers, "no writer process seen"
    assert _wait_until(lambda: not _alive(helpers), 15, 0.1), f"left running: {sorted(_alive(helpers))}"
    assert _wait_until(lambda: not tmp.exists(), 5, 0.1), f"{tmp} left behind"
    assert not {n for n in shm_new if (Path("/dev/shm") / n).exists()}, f"shared memory left: {shm_new}"
    return True


def test_sigkill_while_the_beton_is_written_leaves_nothing_behind(tmp_path):
    root = _dataset(tmp_path / "src", 120, 900)
    for attempt in range(3):
        if _kill_while_writing(root, tmp_path / f"out{attempt}"):
            return
    pytest.fail("the .beton was always finished before the kill; make the dataset larger")
