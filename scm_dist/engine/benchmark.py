"""Benchmark: training images/s per backend and precision, 1 and 2 processes.

Every run trains the same model on the same synthetic shards through the real engine
(loader, backend, optimizer step, logging) for a fixed number of steps; images/s is
taken over the steps after warm-up. The baseline is a bare single-process PyTorch loop
(the same model, loader, AdamW and loss; no backend, no logging, no checkpoints). On this
host a process gets cores / processes threads, so "2 processes" share the same cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..config import ExperimentConfig, load_config
from .spawn import spawn_local

RUNS = [
    ("accelerate", "fp32", None),
    ("accelerate", "bf16", None),
    ("deepspeed", "bf16", 2),
    ("deepspeed", "bf16", 3),
]


def _config(
    args: argparse.Namespace, shards: Path, out: Path, engine: str, precision: str, stage: int | None
) -> ExperimentConfig:
    overrides = [
        f"data.train_dir={shards}/train",
        f"data.val_dir={shards}/val",
        f"train.output_dir={out}",
        f"data.batch_size={args.batch}",
        "data.workers=0",
        f"model.name={args.model}",
        f"model.img_size={args.img_size}",
        f"data.crop_size={args.img_size}",
        f"data.resize_size={args.img_size}",
        f"data.eval_size={args.img_size}",
        f"model.depth={args.depth}",
        f"train.max_steps={args.steps}",
        f"train.log_every={args.steps // 2}",
        "train.checkpoint_every=100000",
        "eval.after_train=false",
        f"train.engine={engine}",
        f"train.precision={precision}",
    ]
    if stage is not None:
        overrides.append(f"train.deepspeed_config=configs/deepspeed/zero{stage}.json")
    return load_config(None, overrides)


def _train_rank(cfg: ExperimentConfig) -> float:
    """Train as scm-train does (the application layer) and return images/s (all ranks)
    over the second half of the steps."""
    from ..app import build_trainer, start_runtime

    runtime = start_runtime(cfg)
    build_trainer(cfg, runtime).run()
    lines = (Path(cfg.train.output_dir) / "metrics.jsonl").read_text().splitlines() if runtime.is_main else []
    runtime.close()
    return json.loads(lines[-1])["train/images_per_s"] if lines else 0.0


def _bare_loop(cfg: ExperimentConfig) -> float:
    """Plain PyTorch: the same model, loader, AdamW and loss in one process."""
    from ..data import build_train_loader
    from ..models.build import build_model
    from .optim import param_groups

    torch.manual_seed(0)
    loader = build_train_loader(cfg.data, seed=cfg.seed)
    model = build_model(cfg.model, loader.num_classes).train()
    optimizer = torch.optim.AdamW(param_groups(model, cfg.optim.weight_decay), lr=1e-4)
    batches = iter(loader)
    warmup, count, start = cfg.train.max_steps // 2, 0, 0.0
    for step in range(cfg.train.max_steps):
        if step == warmup:
            start = time.perf_counter()
        images, labels = next(batches)
        loss = torch.nn.functional.cross_entropy(model(images.to_model("cpu")), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        count += labels.numel() if step >= warmup else 0
    return count / (time.perf_counter() - start)


def run(argv: list[str]) -> dict:
    """Images/s per (engine, precision, processes), scaling and overhead, as one dict."""
    parser = argparse.ArgumentParser(prog="bench train")
    parser.add_argument("--model", default="deit_scm_tiny_patch16_224")
    parser.add_argument("--img-size", type=int, default=112)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=16)
    args, _ = parser.parse_known_args(argv)
    cores = os.cpu_count() or 1
    result: dict = {
        "benchmark": "train",
        "model": args.model,
        "depth": args.depth,
        "img_size": args.img_size,
        "micro_batch": args.batch,
        "steps": args.steps,
        "cores": cores,
        "device": "cpu",
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        from data_shards.cli import main as shards_main

        shards = tmp / "synthetic"
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the benchmark's JSON
            shards_main(
                [
                    "synth",
                    "--out",
                    str(shards),
                    "--train",
                    str(args.batch * args.steps * 2),
                    "--val",
                    "16",
                    "--image-size",
                    str(args.img_size),
                ]
            )
        bare = spawn_local(
            _bare_loop, 1, (_config(args, shards, tmp / "bare", "accelerate", "fp32", None),), threads=cores
        )[0]
        result["bare_pytorch_fp32_1proc_images_per_s"] = round(bare, 2)
        for engine, precision, stage in RUNS:
            per_world = {}
            for world in (1, 2):
                out = tmp / f"{engine}{stage or ''}_{precision}_{world}"
                cfg = _config(args, shards, out, engine, precision, stage)
                ips = spawn_local(_train_rank, world, (cfg,), threads=max(1, cores // world))[0]
                per_world[world] = ips
            name = f"{engine}{'-zero' + str(stage) if stage is not None else ''}"
            result["runs"].append(
                {
                    "engine": name,
                    "precision": precision,
                    "images_per_s_1proc": round(per_world[1], 2),
                    "images_per_s_2proc": round(per_world[2], 2),
                    "scaling_efficiency_2v1": round(per_world[2] / (2 * per_world[1]), 3),
                    "throughput_ratio_2v1": round(per_world[2] / per_world[1], 3),
                    "overhead_vs_bare_1proc": round(1 - per_world[1] / bare, 3)
                    if precision == "fp32"
                    else None,
                }
            )
    return result


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
