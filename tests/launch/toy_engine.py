"""A small real distributed trainer with the engine's contract, for launcher tests.

``train(cfg, stop)``: gloo process group from the standard env vars, least squares on a
fixed data set split across ranks (gradients all-reduced, step cfg.optim.lr), a checkpoint every
``cfg.train.checkpoint_every`` steps, resume from it, stop on request at a step boundary.
``reference_weights(cfg, world_size)`` is the same math written directly, in one process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

STEP_SLEEP_S = 0.1


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    return x, y


def _grad(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2 * x.T @ (x @ w - y) / len(x)


def reference_weights(cfg, world_size: int) -> list[float]:
    """Uninterrupted training, one process, the per-rank gradients averaged directly."""
    x, y = _data(cfg.seed)
    w = torch.zeros(4, dtype=torch.float64)
    for _ in range(cfg.train.max_steps):
        grads = [_grad(w, x[r::world_size], y[r::world_size]) for r in range(world_size)]
        w = w - cfg.optim.lr * sum(grads) / world_size
    return w.tolist()


def train(cfg, stop) -> dict:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "toy_ckpt.pt"
    x, y = _data(cfg.seed)
    x, y = x[rank::world], y[rank::world]
    w, start = torch.zeros(4, dtype=torch.float64), 0
    if ckpt.exists():
        state = torch.load(ckpt)
        w, start = state["w"], state["step"]
    with open(out / f"starts_rank{rank}.txt", "a") as f:
        f.write(
            f"{start} {os.environ.get('SLURM_RESTART_COUNT', '0')} {os.environ['MASTER_ADDR']} "
            f"{os.environ['MASTER_PORT']} {os.environ['LOCAL_RANK']} {world} {os.getpid()}\n"
        )

    def save(step: int) -> None:
        if rank == 0:
            torch.save({"w": w, "step": step}, out / "toy_ckpt.tmp")
            os.replace(out / "toy_ckpt.tmp", ckpt)
        dist.barrier()

    for step in range(start, cfg.train.max_steps):
        flag = torch.tensor([float(stop.is_set())])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item():
            save(step)
            dist.destroy_process_group()
            return {"status": "preempted", "step": step}
        g = _grad(w, x, y)
        dist.all_reduce(g)
        w = w - cfg.optim.lr * g / world
        (out / "progress.txt").write_text(str(step + 1))
        time.sleep(STEP_SLEEP_S)
        if (step + 1) % cfg.train.checkpoint_every == 0:
            save(step + 1)
    save(cfg.train.max_steps)
    result = {"status": "completed", "weights": w.tolist(), "world_size": world}
    if rank == 0:
        (out / "results.json").write_text(json.dumps(result))
    dist.destroy_process_group()
    return result


def train_failing_on_rank1(cfg, stop) -> dict:
    """Rank 1 raises while rank 0 waits in a collective (a crash on one node)."""
    dist.init_process_group("gloo")
    if dist.get_rank() == 1:
        raise RuntimeError("rank 1 crashed")
    dist.all_reduce(torch.ones(1))  # would wait forever for rank 1
    return {"status": "completed"}
