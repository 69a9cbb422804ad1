"""Worker processes that never outlive an interrupted or killed conversion.

- :func:`worker_pool`: a fork pool whose workers ignore SIGINT (Ctrl-C reaches the whole
  foreground process group; a worker interrupted inside the pool's queue lock would leave
  ``Pool.terminate`` waiting forever) and die with their parent (``PR_SET_PDEATHSIG``).
- :func:`run_guarded`: runs a function in a child process in its own process group, tied to
  the caller by a pipe. When the caller dies (even by SIGKILL) or is interrupted, the pipe
  reaches end-of-file; the child then runs its cleanup (temporary file, shared memory) and
  kills its whole process group, grandchildren included. FFCV's ``DatasetWriter`` starts
  its own worker processes and a shared-memory block and has no such guard, hence this.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.pool import Pool
from typing import Any

_PR_SET_PDEATHSIG = 1
GRACE_S = 30.0  # how long the caller waits for an interrupted child to clean up


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)


def _pool_worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


def worker_pool(workers: int) -> Pool:
    """A fork pool of ``workers`` processes that ignore SIGINT and die with this process."""
    return multiprocessing.get_context("fork").Pool(workers, _pool_worker_init, (os.getpid(),))


class ChildFailed(RuntimeError):
    """The guarded child raised (the message is its error) or was killed."""


def _child(
    lifeline: int, parent_end: int, errors: Any, work: Callable[[], None], cleanup: Callable[[], None]
) -> None:
    os.setpgid(0, 0)  # grandchildren join this group: one killpg reaches them all
    os.close(parent_end)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides, through the pipe

    def watch() -> None:
        while os.read(lifeline, 1):
            pass
        try:  # end of file: the caller is gone or gave up
            cleanup()
        finally:
            os.killpg(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    try:
        work()
    except BaseException as err:  # report any failure to the caller, then exit non-zero
        errors.send(f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-3)}")
        cleanup()
        os._exit(1)


def run_guarded(work: Callable[[], None], cleanup: Callable[[], None]) -> None:
    """Run ``work()`` in a guarded child (see the module docstring) and wait for it.

    ``cleanup()`` runs in the child when it must stop early or ``work`` fails. Raises
    :class:`ChildFailed` when ``work`` raised or the child was killed; a KeyboardInterrupt
    in the caller stops the child (and its children) before it propagates.
    """
    ctx = multiprocessing.get_context("fork")
    lifeline, parent_end = os.pipe()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(lifeline, parent_end, send, work, cleanup))
    child.start()
    os.close(lifeline)
    send.close()
    try:
        child.join()
    finally:
        os.close(parent_end)  # the child's watcher sees end-of-file if it still runs
        child.join(GRACE_S)
        if child.is_alive():
            assert child.pid is not None  # started above
            os.killpg(child.pid, signal.SIGKILL)
            child.join()
    assert child.exitcode is not None  # joined above
    if child.exitcode != 0:
        message = receive.recv() if receive.poll() else f"killed by signal {-child.exitcode}"
        raise ChildFailed(message)
