"""Signals SLURM sends before the end of a job -> a stop request the training loop polls.

submitit's own handler checkpoints and exits inside the signal handler, which can
interrupt a collective on one rank and deadlock the others. Here the handler only sets
a flag; the loop reads it at every optimizer step boundary, all ranks agree on it (an
asynchronous vote, settled one step later), a checkpoint is written, and only then rank 0
requeues the job.

- USR1 / USR2 (the time-limit warning from ``--signal``, or ``scancel --signal=USR2``):
  stop, checkpoint, requeue ourselves.
- SIGTERM (preemption, ``scontrol requeue``, ``scancel``): stop and checkpoint if time
  allows; SLURM itself decides whether the job comes back, we never requeue.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from scm_dist.stop import StopFlag

REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class SignalWatch:
    """Installs handlers that forward SLURM's signals to ``stop.set()`` and remembers them."""

    def __init__(self, stop: StopFlag) -> None:
        self.stop = stop
        self.received: list[str] = []
        for sig in (*REQUEUE_SIGNALS, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signal.Signals(signum).name)
        print(
            f"[scm-submit] caught {self.received[-1]}: stopping at the next step boundary",
            file=sys.stderr,
            flush=True,
        )
        self.stop.set()

    @property
    def should_requeue(self) -> bool:
        """True when a warning signal came and SLURM is not already terminating the job."""
        return bool(self.received) and "SIGTERM" not in self.received


class RequeueError(RuntimeError):
    """``scontrol requeue`` refused; the message is SLURM's."""


def requeue(job_id: str) -> None:
    """Put this job back in the queue; SLURM then ends the running steps."""
    out = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RequeueError(f"scontrol requeue {job_id} failed: {(out.stderr or out.stdout).strip()}")
