"""``make demo``: the whole toolkit end to end on the built-in synthetic WSOL set.

    python -m scm_dist.demo [--out demo_out] [--fresh] [--quick]

1. ``scm-shards synth``: the synthetic set in both shard formats (WebDataset and FFCV) in
   ``<out>/data``; reused on re-runs when its manifests match and verify, unless ``--fresh``.
2. SCM, then the TS-CAM baseline, each trained by ``accelerate launch`` on 2 processes
   (``scm-train``, configs/experiments/demo_{scm,tscam}.yaml, identical but for the model)
   and evaluated by distributed evaluation right after (``eval.after_train``).
3. The centred-box baseline on the same val boxes: per IoU threshold, the share of images
   the best single centred box (any width and height fraction) localizes; the same measure
   the shards' manifest records (``scm-shards info``). It has no classifier: no Top-1 numbers.
4. A table of Top-1 Cls, Top-1 Loc, GT-known Loc and MaxBoxAccV2, ``<out>/demo_results.json``
   and where everything lies.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIG = REPO / "configs" / "accelerate" / "cpu_2proc.yaml"
EXPERIMENTS = REPO / "configs" / "experiments"
MODELS = (("SCM", "demo_scm"), ("TS-CAM", "demo_tscam"))
BASELINE = "centred box"
METRICS = ("Top-1 Cls", "Top-1 Loc", "GT-known Loc", "MaxBoxAccV2")


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where its log is."""


def _synth_arguments(args: argparse.Namespace) -> dict[str, Any]:
    from data_shards.sources.synthetic import GENERATOR_VERSION

    return {
        "train": args.train_images,
        "val": args.val_images,
        "image_size": args.image_size,
        "classes": args.classes,
        "seed": args.seed,
        "generator_version": GENERATOR_VERSION,
    }


def reusable_shards(data_dir: Path, wanted: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``data_dir`` holds finished train and val splits made with ``wanted``
    synth arguments, in both formats, whose files match their manifests."""
    from data_shards.manifest import verify_split
    from data_shards.schema import FORMATS, MANIFEST_NAME, read_manifest

    for split in ("train", "val"):
        folder = data_dir / split
        if not (folder / MANIFEST_NAME).is_file():
            return False, f"{folder} has no {MANIFEST_NAME}"
        manifest = read_manifest(folder)
        made = {key: manifest.arguments.get(key) for key in wanted}
        if made != wanted:
            return False, f"{folder} was made with {made}, this demo wants {wanted}"
        if set(manifest.formats) != set(FORMATS):
            return False, f"{folder} holds {manifest.formats}, not both formats"
        problems = verify_split(folder)
        if problems:
            return False, f"{folder}: {problems[0]}"
    return True, "manifests match and every shard verifies"


def _stream(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
    """Run ``command``, its output going both to the terminal (progress bars included)
    and to ``log_path``; raise :class:`DemoError` when it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        log.write(("$ " + " ".join(command) + "\n").encode())
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
        assert process.stdout is not None
        while chunk := os.read(process.stdout.fileno(), 65536):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            log.write(chunk)
        code = process.wait()
    if code:
        raise DemoError(
            f"`{' '.join(command[:6])} ...` failed with exit code {code}; its full output is in {log_path}"
        )


def make_shards(args: argparse.Namespace, data_dir: Path, log_dir: Path) -> str:
    """Synthesize the set (both formats) unless a matching one is already there."""
    wanted = _synth_arguments(args)
    if not args.fresh:
        ok, reason = reusable_shards(data_dir, wanted)
        if ok:
            return f"reused {data_dir} ({reason})"
        print(f"[demo] making new shards: {reason}", flush=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    _stream(
        [
            sys.executable,
            "-m",
            "data_shards",
            "synth",
            "--out",
            str(data_dir),
            "--train",
            str(args.train_images),
            "--val",
            str(args.val_images),
            "--image-size",
            str(args.image_size),
            "--classes",
            str(args.classes),
            "--seed",
            str(args.seed),
            "--workers",
            "2",
        ],
        log_dir / "synth.log",
    )
    return f"synthesized {data_dir}"


def run_overrides(args: argparse.Namespace, data_dir: Path, run_dir: Path) -> list[str]:
    """The dotted overrides that point a demo config at this demo's data and run folder."""
    return [
        f"data.train_dir={data_dir / 'train'}",
        f"data.val_dir={data_dir / 'val'}",
        f"train.output_dir={run_dir}",
        "train.resume=none",
        "eval.after_train=true",
        *args.set,
    ]


def train_and_evaluate(
    args: argparse.Namespace, config: str, data_dir: Path, run_dir: Path, log_path: Path
) -> dict[str, Any]:
    """``accelerate launch`` (2 processes) of ``scm-train`` with evaluation after training."""
    shutil.rmtree(run_dir, ignore_errors=True)
    threads = str(max(1, (os.cpu_count() or 2) // 2))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE_CONFIG),
        "-m",
        "scm_dist.cli_train",
        "--config",
        str(EXPERIMENTS / f"{config}.yaml"),
        *run_overrides(args, data_dir, run_dir),
        "train.expected_world_size=2",
    ]
    _stream(command, log_path, env)
    results = run_dir / "eval" / "results.json"
    if not results.is_file():
        raise DemoError(f"training finished but wrote no {results}; see {log_path}")
    return json.loads(results.read_text())


def centred_box_results(config: str, overrides: list[str]) -> dict[str, Any]:
    """The centred-box baseline (:func:`data_shards.sources.synthetic.centred_box_baseline`,
    the measure the shards' manifest records) on the val split the models are evaluated on,
    with the boxes the same loader gives the evaluator (eval frame): per IoU threshold the
    best single centred box; GT-known Loc at IoU 50, MaxBoxAccV2 the mean over thresholds."""
    from data_shards.sources.synthetic import centred_box_baseline
    from scm_dist.config import load_config
    from scm_dist.data import build_eval_loader

    cfg = load_config(EXPERIMENTS / f"{config}.yaml", overrides)
    boxes = [np.asarray(b, np.float64) for batch in build_eval_loader(cfg.data) for b in batch.boxes]
    size = (cfg.data.eval_size, cfg.data.eval_size)
    best = centred_box_baseline(boxes, [size] * len(boxes), [t / 100 for t in cfg.eval.iou_thresholds])
    per_iou = {
        str(round(t * 100)): {"acc": 100 * acc, "box_fraction": list(shape)}
        for t, (acc, shape) in best.items()
    }
    return {
        "num_images": len(boxes),
        "per_iou": per_iou,
        "GT-known Loc": per_iou["50"]["acc"],
        "MaxBoxAccV2": float(np.mean([v["acc"] for v in per_iou.values()])),
    }


def table_row(results: dict[str, Any]) -> dict[str, float | None]:
    """The four headline numbers (%) of a results dict, ``wsol`` protocol, IoU 50."""
    wsol = results["protocols"]["wsol"]
    return {
        "Top-1 Cls": wsol["Top-1 Cls"],
        "Top-1 Loc": wsol["Top-1 Loc"]["acc"],
        "GT-known Loc": wsol["GT-known Loc"]["acc"],
        "MaxBoxAccV2": wsol["MaxBoxAccV2"]["acc"],
    }


def format_rows(rows: dict[str, dict[str, float | None]]) -> str:
    """A text table, one line per method."""
    head = f"{'method':<13}" + "".join(f"{m:>14}" for m in METRICS)
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        cells = "".join(f"{'n/a':>14}" if row[m] is None else f"{row[m]:>14.1f}" for m in METRICS)
        lines.append(f"{name:<13}{cells}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scm_dist.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="everything goes here")
    p.add_argument("--fresh", action="store_true", help="synthesize the shards again")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a seconds-long smoke run (tiny set and model, a few steps): checks "
        "the pipeline, learns nothing",
    )
    p.add_argument("--train-images", type=int, default=None)
    p.add_argument("--val-images", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None, help="synthetic image side (px)")
    p.add_argument("--classes", type=int, default=5, help="shapes (2-10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for both models (repeatable), e.g. train.epochs=2",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments, with the --quick preset or the full demo's defaults."""
    args = _parser().parse_args(argv)
    quick = {"train_images": 128, "val_images": 32, "image_size": 64}
    full = {"train_images": 8000, "val_images": 1000, "image_size": 96}
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.quick:
        size = args.image_size
        args.set = [
            f"model.img_size={size}",
            f"data.crop_size={size}",
            f"data.resize_size={size}",
            f"data.eval_size={size}",
            "model.depth=1",
            "data.batch_size=8",
            "data.eval_batch_size=16",
            "train.max_steps=3",
            "optim.warmup_epochs=0",
            "eval.num_pictures=2",
            *args.set,
        ]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the demo; returns what it wrote to ``<out>/demo_results.json``."""
    args = parse_args(argv)
    out = args.out.resolve()
    data_dir, log_dir = out / "data", out / "logs"
    started = time.perf_counter()
    timings: dict[str, float] = {}

    print(f"[demo] 1/4 shards in {data_dir}", flush=True)
    shards = make_shards(args, data_dir, log_dir)
    timings["shards_s"] = time.perf_counter() - started
    print(f"[demo] {shards} ({timings['shards_s']:.0f} s)", flush=True)

    results, runs = {}, {}
    for step, (name, config) in enumerate(MODELS, start=2):
        run_dir = out / "runs" / config.removeprefix("demo_")
        print(
            f"[demo] {step}/4 {name}: accelerate launch, 2 processes, {config}.yaml -> {run_dir}", flush=True
        )
        begun = time.perf_counter()
        results[name] = train_and_evaluate(args, config, data_dir, run_dir, log_dir / f"{config}.log")
        timings[f"{config}_s"] = time.perf_counter() - begun
        runs[name] = {
            "run_dir": str(run_dir),
            "checkpoint": str(run_dir / "model_final.pt"),
            "metrics": str(run_dir / "metrics.jsonl"),
            "eval": str(run_dir / "eval" / "results.json"),
            "pictures": str(run_dir / "eval" / "pictures"),
            "threshold_curves": str(run_dir / "eval" / "threshold_curves.png"),
            "log": str(log_dir / f"{config}.log"),
        }
        print(f"[demo] {name} done in {timings[f'{config}_s']:.0f} s", flush=True)

    print(f"[demo] 4/4 {BASELINE} baseline on the same val set", flush=True)
    begun = time.perf_counter()
    baseline = centred_box_results(MODELS[0][1], run_overrides(args, data_dir, out / "runs"))
    timings["baseline_s"] = time.perf_counter() - begun
    timings["total_s"] = time.perf_counter() - started

    rows = {name: table_row(r) for name, r in results.items()}
    rows[BASELINE] = {
        "Top-1 Cls": None,
        "Top-1 Loc": None,
        "GT-known Loc": baseline["GT-known Loc"],
        "MaxBoxAccV2": baseline["MaxBoxAccV2"],
    }
    from data_shards.schema import read_manifest

    manifest_baseline = {
        k: v for k, v in read_manifest(data_dir / "val").arguments.items() if k.startswith("centred_box")
    }
    summary = {
        "table": rows,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "val_images": baseline["num_images"],
        "runs": runs,
        "data": str(data_dir),
        "centred_box": {"val": baseline, "manifest": manifest_baseline},
        "quick": args.quick,
    }
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2, default=str))

    print("\n" + format_rows(rows))
    print(
        f"({baseline['num_images']} val images; wsol protocol, IoU 50; MaxBoxAccV2 = mean "
        f"over IoU 30/50/70; {BASELINE}: the best single centred box per IoU threshold, "
        "no classifier)"
    )
    print(f"\n[demo] finished in {timings['total_s'] / 60:.1f} min")
    print(f"  table (JSON)       {out / 'demo_results.json'}")
    print(f"  shards             {data_dir}/{{train,val}} (WebDataset .tar and FFCV .beton)")
    for name, paths in runs.items():
        print(f"  {name:<7} checkpoint {paths['checkpoint']}")
        print(f"          results    {paths['eval']}")
        print(f"          pictures   {paths['pictures']}/*.png")
        print(f"          curves     {paths['threshold_curves']}")
        print(f"          logs       {paths['log']}, {paths['metrics']}")
    return summary


if __name__ == "__main__":
    try:
        main()
    except DemoError as err:
        sys.exit(f"[demo] {err}")
