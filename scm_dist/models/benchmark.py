"""Benchmark: the efficient model path against the naive one, and gradient checkpointing
(train step).

Paths: ``efficient`` (the default: fused class-token attention, fast SCM), ``naive``
(materialised attention, literal SCM: the spec step by step), ``naive_attention``
(materialised attention, fast SCM), which isolates what each part gives, and
``checkpointed`` (the efficient path with ``set_grad_checkpointing()``: every block
recomputed in backward). The paths run in one fresh process with their timed steps
interleaved (a change of load on a shared host hits them alike); step times are medians.
Reported per path: train-step images/s and memory. Memory on GPU: the CUDA allocator's
peak above the resident weights/optimizer. On CPU PyTorch keeps no allocator peak, so the
figures are the bytes kept for backward (each storage counted once): what autograd saves
(saved-tensor hooks) plus, with checkpointing, the block inputs the checkpoints hold; over
the whole model (``activation_memory_mb``, the dominant part of a train step's peak) and
in the attention core (``attention_memory_mb``: what lies between the qkv and the output
projections, plus the naive path's materialised maps kept for the CAM; the tensors both
paths share, qkv's input and output and proj's input, are excluded).
``speedup`` = efficient / naive images/s (wall clock); ``speedup_cpu_time`` the same per
CPU second of the process (steadier when other work shares the cores);
``attention_speedup`` = efficient / naive_attention (fused attention alone);
``memory_ratio`` = naive / efficient attention memory; ``checkpoint_speed_ratio`` =
checkpointed / efficient images/s (below 1: the price of recomputing);
``checkpoint_memory_ratio`` = efficient / checkpointed activation memory (the saving).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time

import torch

from .encoder import DeiTEncoder
from .registry import create_wsol_model


def _storage_key(tensor: torch.Tensor) -> tuple[int, int]:
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


class SavedTensorMeter:
    """Counts the bytes kept for backward in a model with ``blocks[i].attn``: what autograd
    saves and, when the model checkpoints its blocks, the block inputs the checkpoints keep
    (inside a checkpoint autograd saves nothing that outer hooks would see)."""

    def __init__(self, model: DeiTEncoder) -> None:
        self.activation_bytes = 0
        self.attention_bytes = 0
        self._seen: set[tuple[int, int]] = set()
        self._seen_attention: set[tuple[int, int]] = set()
        self._shared: set[tuple[int, int]] = set()
        self._in_attention = False
        self._model = model
        for block, attn in zip(model.blocks, model.attention_layers()):
            block.register_forward_pre_hook(self._block_input)
            attn.register_forward_pre_hook(self._enter)
            attn.register_forward_hook(self._leave)
            attn.qkv.register_forward_pre_hook(self._mark_shared)
            attn.qkv.register_forward_hook(self._mark_shared)
            attn.proj.register_forward_pre_hook(self._mark_shared)
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _count(self, tensor: torch.Tensor) -> tuple[int, int]:
        key = _storage_key(tensor)
        if key not in self._seen:
            self._seen.add(key)
            self.activation_bytes += key[1]
        return key

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = self._count(tensor)
        if self._in_attention and key not in self._shared and key not in self._seen_attention:
            self._seen_attention.add(key)
            self.attention_bytes += key[1]
        return tensor

    def _block_input(self, _module, inputs) -> None:
        if self._model.grad_checkpointing and torch.is_grad_enabled():
            self._count(inputs[0])

    def _mark_shared(self, _module, inputs, output=None) -> None:
        for tensor in (*inputs, *([output] if output is not None else [])):
            self._shared.add(_storage_key(tensor))

    def _enter(self, _module, _inputs) -> None:
        self._in_attention = True

    def _leave(self, module, _inputs, _output) -> None:
        self._in_attention = False
        recorded = module.cls_attention
        if recorded is not None and recorded.ndim == 3:  # naive: the full map is kept for the CAM
            size = recorded.numel() * recorded.element_size()
            self.attention_bytes += size
            self.activation_bytes += size


# path: (attention impl, SCM impl, gradient checkpointing)
PATHS = {
    "efficient": ("fused", "fast", False),
    "naive": ("naive", "literal", False),
    "naive_attention": ("naive", "fast", False),
    "checkpointed": ("fused", "fast", True),
}


class _TrainStep:
    """One path's model, optimizer and fixed batch; ``__call__`` runs one train step."""

    def __init__(self, path: str, args: argparse.Namespace, device: str) -> None:
        torch.manual_seed(0)
        attn_impl, scm_impl, grad_checkpointing = PATHS[path]
        self.model = create_wsol_model(
            args.model, num_classes=1000, img_size=args.img_size, attn_impl=attn_impl, scm_impl=scm_impl
        )
        self.model.to(device).train()
        self.model.set_grad_checkpointing(grad_checkpointing)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.images = torch.randn(args.batch, 3, args.img_size, args.img_size, device=device)
        self.labels = torch.randint(0, 1000, (args.batch,), device=device)
        self.device = device

    def __call__(self) -> None:
        loss = torch.nn.functional.cross_entropy(self.model(self.images), self.labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.device == "cuda":
            torch.cuda.synchronize()


def _measure(args: argparse.Namespace, device: str, queue) -> None:
    """Every path in one process, their timed steps interleaved (one step of each path per
    round, the order rotating), so a change of load hits all paths alike; medians."""
    steps = {path: _TrainStep(path, args, device) for path in PATHS}
    for step in steps.values():
        step()  # warm-up: allocates the optimizer state
    wall: dict[str, list[float]] = {path: [] for path in PATHS}
    cpu: dict[str, list[float]] = {path: [] for path in PATHS}
    peak: dict[str, float] = {path: 0.0 for path in PATHS}
    order = list(PATHS)
    for round_index in range(args.steps):
        for path in order[round_index % len(order) :] + order[: round_index % len(order)]:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                resident = torch.cuda.memory_allocated()
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[path]()
            wall[path].append(time.perf_counter() - start)
            cpu[path].append(time.process_time() - start_cpu)
            if device == "cuda":
                peak[path] = max(peak[path], torch.cuda.max_memory_allocated() - resident)
    results = {}
    for path, step in steps.items():
        step_s, cpu_s = statistics.median(wall[path]), statistics.median(cpu[path])
        result = {
            "images_per_s": round(args.batch / step_s, 2),
            "images_per_cpu_s": round(args.batch / cpu_s, 3),
            "step_s": round(step_s, 3),
        }
        if device == "cuda":
            result["peak_step_memory_mb"] = round(peak[path] / 2**20, 1)
        meter = SavedTensorMeter(step.model)
        with meter.hooks:  # one more step, untimed, to count what autograd saves
            step()
        result["activation_memory_mb"] = round(meter.activation_bytes / 2**20, 1)
        result["attention_memory_mb"] = round(meter.attention_bytes / 2**20, 1)
        results[path] = result
    queue.put(results)


def _run_paths(args: argparse.Namespace, device: str) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(args, device, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run(argv: list[str]) -> dict:
    """Side-by-side efficient vs naive train step; returns one JSON-able dict."""
    parser = argparse.ArgumentParser(prog="bench model")
    parser.add_argument("--model", default="deit_scm_small_patch16_224")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per path")
    args, _ = parser.parse_known_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    result: dict = {
        "benchmark": "model",
        "model": args.model,
        "batch": args.batch,
        "img_size": args.img_size,
        "timed_steps": args.steps,
        "torch_threads": torch.get_num_threads(),
    }
    for device in devices:
        runs = _run_paths(args, device)
        efficient, naive = runs["efficient"], runs["naive"]
        summary = {
            **runs,
            "speedup": round(efficient["images_per_s"] / naive["images_per_s"], 3),
            "speedup_cpu_time": round(efficient["images_per_cpu_s"] / naive["images_per_cpu_s"], 3),
            "attention_speedup": round(
                efficient["images_per_s"] / runs["naive_attention"]["images_per_s"], 3
            ),
            "memory_ratio": round(naive["attention_memory_mb"] / efficient["attention_memory_mb"], 3),
            "activation_memory_ratio": round(
                naive["activation_memory_mb"] / efficient["activation_memory_mb"], 3
            ),
            "checkpoint_speed_ratio": round(
                runs["checkpointed"]["images_per_s"] / efficient["images_per_s"], 3
            ),
            "checkpoint_memory_ratio": round(
                efficient["activation_memory_mb"] / runs["checkpointed"]["activation_memory_mb"], 3
            ),
        }
        if device == "cuda":
            summary["peak_memory_ratio"] = round(
                naive["peak_step_memory_mb"] / efficient["peak_step_memory_mb"], 3
            )
            summary["checkpoint_peak_memory_ratio"] = round(
                efficient["peak_step_memory_mb"] / runs["checkpointed"]["peak_step_memory_mb"], 3
            )
        result[device] = summary
    return result


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
