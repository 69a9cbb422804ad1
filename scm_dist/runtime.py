"""The runtime: where this process sits in the launch, its device, and its collectives.

Built once per process (:meth:`Runtime.start`) from what the launcher exported: torchrun,
``accelerate launch``, the ``deepspeed`` launcher, the SLURM glue in ``launch/`` and
:func:`scm_dist.engine.spawn.spawn_local` all set RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT. This is the one module that reads them. It joins the
process group (NCCL on CUDA, gloo on CPU) before Accelerate or DeepSpeed start, which
then reuse it, and it owns every collective that training and evaluation run:

- every tensor handed to a collective must be on :attr:`Runtime.device` (NCCL only takes
  CUDA tensors); :meth:`Runtime.all_reduce` checks it, :meth:`sum` and :meth:`max` move
  their argument there first;
- whenever a process group exists the collective runs, even at world size 1, so that a
  one-GPU run exercises NCCL exactly as a multi-GPU run does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}


class DeviceError(RuntimeError):
    """A collective was handed a tensor that is not on the runtime's device."""


class WorldSizeError(RuntimeError):
    """The processes that work together are not the ones the launcher started."""


def setup_logging(rank: int) -> None:
    """The one logging set-up: INFO on rank 0, warnings elsewhere, lines tagged by rank."""
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@dataclass(frozen=True)
class Launch:
    """What the launcher meant: this process's place, and whether it named a rendezvous."""

    rank: int
    world_size: int
    local_rank: int
    rendezvous: bool  # MASTER_ADDR and MASTER_PORT set: a launcher started this process

    @classmethod
    def from_environment(cls) -> Launch:
        env = os.environ
        return cls(
            rank=int(env.get("RANK", 0)),
            world_size=int(env.get("WORLD_SIZE", 1)),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            rendezvous="MASTER_ADDR" in env and "MASTER_PORT" in env,
        )


@dataclass(frozen=True)
class Runtime:
    """This process's rank, device and process group, and the collectives over them."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    distributed: bool  # a process group exists: collectives run (at world size 1 too)

    @classmethod
    def start(cls, need_group: bool = False) -> Runtime:
        """Read the launch, pick the device, join (or reuse) the process group, set up
        logging. ``need_group``: create a one-process group when no launcher named one
        (DeepSpeed needs a group even alone)."""
        launch = Launch.from_environment()
        if torch.cuda.is_available():
            device = torch.device("cuda", launch.local_rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized() and (launch.rendezvous or launch.world_size > 1 or need_group):
            _init_group(launch, device)
        if dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
            if (rank, world_size) != (launch.rank, launch.world_size):
                raise WorldSizeError(
                    f"the process group has rank {rank} of {world_size}, the launcher set "
                    f"RANK={launch.rank} WORLD_SIZE={launch.world_size}"
                )
        runtime = cls(launch.rank, launch.local_rank, launch.world_size, device, dist.is_initialized())
        setup_logging(runtime.rank)
        return runtime

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives: the only calls into torch.distributed in scm_dist -------------------
    def _check_device(self, tensor: torch.Tensor) -> None:
        """Every tensor a collective receives passes here."""
        if tensor.device != self.device:
            raise DeviceError(
                f"collective on a {tensor.device} tensor, but this runtime's device is {self.device} "
                "(NCCL takes CUDA tensors only): create it on runtime.device"
            )

    def all_reduce(self, tensor: torch.Tensor, op: str = "sum", async_op: bool = False):
        """Reduce ``tensor`` in place over all ranks (a no-op without a process group).

        ``tensor`` must already be on :attr:`device`; returns the async work handle when
        ``async_op`` and a group exists, else None.
        """
        self._check_device(tensor)
        if not self.distributed:
            return None
        return dist.all_reduce(tensor, op=_OPS[op], async_op=async_op)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, on this runtime's device (the argument is moved there first)."""
        tensor = tensor.to(self.device)
        self.all_reduce(tensor, "sum")
        return tensor

    def max(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise maximum over ranks, on this runtime's device."""
        tensor = tensor.to(self.device)
        self.all_reduce(tensor, "max")
        return tensor

    def broadcast_flag(self, flag: bool, src: int = 0) -> bool:
        """Rank ``src``'s ``flag``, on every rank."""
        tensor = torch.full((1,), float(flag), device=self.device)
        self._check_device(tensor)
        if self.distributed:
            dist.broadcast(tensor, src=src)
        return bool(tensor.item())

    def barrier(self) -> None:
        """Wait until every rank gets here (on this runtime's device under NCCL)."""
        if not self.distributed:
            return
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def vote(self) -> FlagVote:
        """A fresh :class:`FlagVote` over this runtime's ranks."""
        return FlagVote(self)

    def close(self) -> None:
        """Leave the process group (at the end of the process's work) and free it: DeepSpeed
        caches the world group in its own globals, which only its own destroy releases (a
        group still referenced keeps its threads running into the interpreter's exit)."""
        if self.distributed and dist.is_initialized():
            deepspeed_comm = sys.modules.get("deepspeed.comm")
            if deepspeed_comm is not None and deepspeed_comm.is_initialized():
                deepspeed_comm.destroy_process_group()
            else:
                dist.destroy_process_group()


def _import_deepspeed_first() -> None:
    """Import DeepSpeed (when installed) before any process group exists.

    ``deepspeed/comm/torch.py`` binds ``GroupMember.WORLD`` as a default argument of its
    ``barrier`` when it is imported: imported once a group exists, it pins that group for the
    life of the process, ``destroy_process_group`` cannot free it, and its gloo / NCCL threads
    are still running when the interpreter exits. A rank that left before the others then
    died with "terminate called without an active exception" (SIGABRT), failing SLURM jobs
    that had finished. Accelerate imports DeepSpeed by itself whenever it is installed (to
    unwrap models), so no run is safe from it: import it while ``WORLD`` is still None."""
    if importlib.util.find_spec("deepspeed") is not None:
        import deepspeed.comm  # noqa: F401


def _init_group(launch: Launch, device: torch.device) -> None:
    """Join the launcher's rendezvous (env://), or make a group of one in this process."""
    _import_deepspeed_first()
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict = {"backend": backend, "rank": launch.rank, "world_size": launch.world_size}
    if device.type == "cuda":
        kwargs["device_id"] = device
    if not launch.rendezvous:
        if launch.world_size > 1:
            raise WorldSizeError(
                f"WORLD_SIZE={launch.world_size} but MASTER_ADDR / MASTER_PORT are not set: "
                "start the processes with torchrun, accelerate launch or scm-submit"
            )
        kwargs["store"] = dist.HashStore()  # one process: nobody to meet, no port to take
    dist.init_process_group(**kwargs)


class FlagVote:
    """Whether any rank raised its flag, agreed without stalling the step.

    Each :meth:`poll` starts an asynchronous MAX all-reduce of this rank's flag and returns
    the outcome of the previous poll's (False at the first). Every rank polls at the same
    steps, so all ranks get the same answer at the same step, one step after the flag was
    raised. Under NCCL the result is copied to pinned host memory behind an event, so
    reading it waits for the previous step's work only, never the current one's.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pending: tuple | None = None

    def poll(self, raised: bool) -> bool:
        agreed = self._finish()
        self._pending = self._start(raised)
        return agreed

    def close(self) -> bool:
        """Wait for the vote in flight (before leaving the loop); its outcome."""
        return self._finish()

    def _start(self, raised: bool) -> tuple:
        runtime = self.runtime
        if not runtime.distributed:
            return (None, raised, None)
        flag = torch.full((1,), float(raised), device=runtime.device)  # a fill: no host copy
        work = runtime.all_reduce(flag, "max", async_op=True)
        if runtime.device.type != "cuda":
            return (work, flag, None)
        work.wait()  # NCCL: the current stream waits for the all-reduce, the host does not
        host = torch.empty(1, pin_memory=True)
        host.copy_(flag, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return (None, host, done)

    def _finish(self) -> bool:
        if self._pending is None:
            return False
        work, value, done = self._pending
        self._pending = None
        if work is not None:
            work.wait()
        if done is not None:
            done.synchronize()
        return bool(value) if isinstance(value, bool) else bool(value.item())
