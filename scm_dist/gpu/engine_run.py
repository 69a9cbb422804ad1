"""Step 4 of the GPU check: the real ``scm-train`` under torchrun (one process) with
Accelerate DDP and DeepSpeed ZeRO-2, bf16: trained, checkpointed, resumed, evaluated; and
Accelerate again with ``data.decode=gpu`` (trained and resumed).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import BASE_CONFIG, REPO, ZERO2, Check


# -- 4. engine ----------------------------------------------------------------------------
def _synthetic_shards(check: Check, root: Path, image_size: int) -> Path:
    """WebDataset-only synthetic train/val splits (data_shards' generator)."""
    from data_shards.convert import ConvertOptions, convert_listing
    from data_shards.schema import FORMAT_WEBDATASET
    from data_shards.sources.synthetic import GENERATOR_VERSION, describe_baseline, list_synthetic

    workers = max(1, min(8, os.cpu_count() or 1))
    for split, count in zip(("train", "val"), check.sizes.engine_images):
        listing = list_synthetic(split, count, 10, image_size, 3, 90, workers)
        options = ConvertOptions(
            formats=(FORMAT_WEBDATASET,), shard_size_mb=2.0, workers=workers, shuffle=split == "train"
        )
        convert_listing(
            listing, root, options, {"generator_version": GENERATOR_VERSION} | describe_baseline(listing)
        )
    return root


def _subprocess_env(check: Check) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env["DS_ACCELERATOR"] = "cuda" if check.device.type == "cuda" else "cpu"
    env.setdefault("OMP_NUM_THREADS", "1" if check.quick else str(max(1, (os.cpu_count() or 2) // 2)))
    return env


def _last_json(text: str) -> dict[str, Any] | None:
    """The last top-level JSON object printed on its own lines (the CLI's summary)."""
    lines = text.splitlines()
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads("\n".join(lines[start:]))
    return None


def _train_cli(check: Check, overrides: list[str], timeout: float) -> dict[str, Any]:
    """``scm-train`` under torchrun, one process; what it printed and how it ended."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "-m",
        "scm_dist.cli_train",
        "--config",
        str(BASE_CONFIG),
        *overrides,
    ]
    started = time.perf_counter()
    # own session: on a timeout the whole tree goes (torchrun's workers too, not only torchrun)
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=_subprocess_env(check),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return {"error": f"timed out after {timeout:.0f} s", "stderr_tail": stderr[-3000:]}
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    result: dict[str, Any] = {
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
    }
    summary = _last_json(done.stdout)
    if summary is not None:
        result["summary"] = {
            k: summary[k] for k in ("status", "step", "epoch", "final_model") if k in summary
        }
        if isinstance(summary.get("eval"), dict):
            result["eval"] = {k: v for k, v in summary["eval"].items() if not isinstance(v, (dict, list))}
    result["resumed"] = "resumed from" in done.stderr
    if done.returncode != 0 or summary is None:
        result["stderr_tail"] = done.stderr[-3000:]
    return result


def _metrics_rate(output_dir: Path) -> float | None:
    """The last logged train/images_per_s (rank 0's metrics.jsonl), if any."""
    path = output_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    rates = [
        json.loads(line).get("train/images_per_s") for line in path.read_text().splitlines() if line.strip()
    ]
    rates = [r for r in rates if r]
    return round(rates[-1], 1) if rates else None


def _engine_overrides(check: Check, shards: Path, engine: str, output_dir: Path) -> list[str]:
    sizes = check.sizes
    img = sizes.engine_img
    model = f"deit_scm_{'small' if img >= 224 else 'tiny'}_patch16_224"
    overrides = [
        f"model.name={model}",
        f"model.img_size={img}",
        "model.drop_path_rate=0.0",
        f"data.train_dir={shards / 'train'}",
        f"data.val_dir={shards / 'val'}",
        "data.format=webdataset",
        f"data.resize_size={img * 256 // 224}",
        f"data.crop_size={img}",
        f"data.eval_size={img}",
        f"data.batch_size={sizes.engine_batch}",
        f"data.eval_batch_size={sizes.engine_batch}",
        f"data.workers={min(4, sizes.loader_workers)}",
        "data.shuffle_buffer=100",
        "optim.warmup_epochs=0",
        f"train.engine={engine}",
        "train.precision=bf16",
        f"train.deepspeed_config={ZERO2}",
        f"train.checkpoint_every={sizes.engine_steps}",
        "train.log_every=1",
        f"train.output_dir={output_dir}",
        "eval.num_pictures=2",
    ]
    if sizes.depth:
        overrides.append(f"model.depth={sizes.depth}")
    return overrides


def step_engine(check: Check) -> dict[str, Any]:
    sizes = check.sizes
    shards = _synthetic_shards(check, check.workdir / "synthetic", sizes.engine_img)
    out: dict[str, Any] = {
        "launcher": "torchrun --standalone --nproc_per_node 1 -m scm_dist.cli_train",
        "process_group": "nccl" if check.device.type == "cuda" else "gloo",
        "images": dict(zip(("train", "val"), sizes.engine_images)),
        "img_size": sizes.engine_img,
        "batch": sizes.engine_batch,
    }
    runs_to_do: tuple[tuple[str, str, list[str]], ...] = (
        ("accelerate_ddp_bf16", "accelerate", []),
        ("deepspeed_zero2_bf16", "deepspeed", []),
        ("accelerate_ddp_bf16_gpu_decode", "accelerate", ["data.decode=gpu"]),
    )
    for name, engine, decode in runs_to_do:
        output_dir = check.workdir / "runs" / name
        base = _engine_overrides(check, shards, engine, output_dir) + decode
        runs: dict[str, Any] = {}
        # the evaluation after training: on the first Accelerate run (quick) or on the two
        # engines (it does not depend on the train decode)
        evaluate = name == "accelerate_ddp_bf16" or (not check.quick and not decode)
        for phase, steps, extra in (
            ("train", sizes.engine_steps, ["eval.after_train=false"]),
            ("resume_and_eval", 2 * sizes.engine_steps, [f"eval.after_train={str(evaluate).lower()}"]),
        ):
            if check.left() < 15:
                runs[phase] = {"skipped": "time budget"}
                break
            runs[phase] = _train_cli(check, [*base, f"train.max_steps={steps}", *extra], check.left() - 5)
            if runs[phase].get("returncode") != 0:
                break
        runs["images_per_s"] = _metrics_rate(output_dir)
        second = runs.get("resume_and_eval", {})
        runs["ok"] = bool(
            runs.get("train", {}).get("summary", {}).get("status") == "completed"
            and second.get("summary", {}).get("status") == "completed"
            and second.get("summary", {}).get("step") == 2 * sizes.engine_steps
            and second.get("resumed")
            and ("eval" in second or not evaluate)
        )
        out[name] = runs
    final = check.workdir / "runs" / "accelerate_ddp_bf16" / "model_final.pt"
    if final.is_file():
        check.results["eval_checkpoint"] = final
        check.results["eval_overrides"] = _engine_overrides(
            check, shards, "accelerate", check.workdir / "eval"
        )
    return out
