"""Command lines: ``scm-train`` and ``scm-eval`` (both read the one experiment config).

scm-train --config configs/experiments/synthetic_scm.yaml [section.key=value ...]
scm-eval  --config configs/experiments/synthetic_scm.yaml --checkpoint runs/x/model_final.pt

The config is loaded and checked before anything starts (no process group, loader or
model); then the application layer (``scm_dist.app``) starts the runtime and runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from .config import ConfigError, ExperimentConfig, load_config


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="experiment YAML (configs/experiments/)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. optim.lr=1e-4")
    return parser


def _parse(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, ExperimentConfig]:
    """Parse the command line and load the config (exit with one line on a bad one)."""
    args, extra = parser.parse_known_intermixed_args(argv)  # overrides before or after options
    try:
        if extra:
            raise ConfigError(f"unrecognised arguments {extra}: overrides look like section.key=value")
        return args, load_config(args.config, args.overrides)
    except ConfigError as err:
        sys.exit(f"{parser.prog}: {err}")


def _run(prog: str, work: Callable[[], Any]) -> Any:
    """Run ``work``; an error that is the user's to fix becomes one line, not a traceback
    per rank (ValueError covers bad values and checkpoints that do not match)."""
    from .data import ShardError
    from .engine.safe_io import RunStateError
    from .runtime import WorldSizeError

    try:
        return work()
    except (FileNotFoundError, ValueError, ShardError, RunStateError, WorldSizeError) as err:
        logging.getLogger(prog).debug("details", exc_info=True)
        sys.exit(f"{prog}: error: {err}")


def train_main(argv: list[str] | None = None) -> None:
    """``scm-train``: train (and evaluate when eval.after_train is set)."""
    _, cfg = _parse(_parser("scm-train", "Train SCM / TS-CAM with Accelerate or DeepSpeed."), argv)
    from . import app

    def work() -> None:
        runtime = app.start_runtime(cfg)
        summary = app.train(cfg, runtime=runtime)
        if runtime.is_main:
            summary.get("eval", {}).pop("config", None)  # already in <output_dir>/config.yaml
            print(json.dumps(summary, indent=2, default=str))
        runtime.close()

    _run("scm-train", work)


def eval_main(argv: list[str] | None = None) -> None:
    """``scm-eval``: distributed WSOL evaluation of a checkpoint."""
    parser = _parser("scm-eval", "Evaluate localization (eval.protocols) on every rank.")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="model file (model_final.pt, an exported encoder or a release checkpoint)",
    )
    args, cfg = _parse(parser, argv)
    from . import app

    def work() -> None:
        runtime = app.start_runtime(cfg, training=False)
        app.evaluate(cfg, args.checkpoint, runtime=runtime)
        runtime.close()

    _run("scm-eval", work)
