"""``scm-submit``: train (and evaluate) an experiment config on SLURM.

scm-submit --config x.yaml --nodes 2 --gpus-per-node 8 --time 1440 optim.lr=1e-4
scm-submit --config x.yaml --nodes 2 --tasks-per-node 1 --dry-run     # CPU nodes
scm-submit --config x.yaml --nodes 1 --gpus-per-node 4 --array sweep.yaml --eval-after
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from launch.slurm import (
    Resources,
    SubmitError,
    loader_cpus_per_task,
    log_folder,
    node_cpus,
    plan_configs,
    sbatch_script,
    submit,
)
from launch.sweep import load_sweep
from scm_dist.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scm-submit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", required=True, help="experiment YAML (configs/experiments/)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="config overrides, e.g. optim.lr=1e-4 train.epochs=3",
    )
    r = p.add_argument_group("resources (per job)")
    r.add_argument("--nodes", type=int, default=1)
    r.add_argument("--gpus-per-node", type=int, default=0, help="one task per GPU")
    r.add_argument(
        "--tasks-per-node",
        type=int,
        default=0,
        help="tasks per node on CPU nodes (default: one per GPU, else 1)",
    )
    r.add_argument(
        "--cpus-per-task",
        type=int,
        default=0,
        help="default: data.workers + 1 (the node's CPUs / tasks with --exclusive)",
    )
    r.add_argument("--time", type=int, default=60, metavar="MIN", help="time limit in minutes")
    r.add_argument("--partition", default="")
    r.add_argument("--account", default="")
    r.add_argument("--qos", default="")
    r.add_argument("--constraint", default="")
    r.add_argument("--mem", default="", help="memory per node, sbatch syntax (32G)")
    r.add_argument("--exclusive", action="store_true")
    r.add_argument(
        "--signal-delay",
        type=int,
        default=120,
        metavar="S",
        help="seconds before the time limit at which USR2 asks for a checkpoint",
    )
    s = p.add_argument_group("sweeps and evaluation")
    s.add_argument("--array", metavar="SWEEP.yaml", help="job array over the sweep's values")
    s.add_argument(
        "--eval-after",
        action="store_true",
        help="a dependent evaluation job (afterok) with its own resources",
    )
    s.add_argument("--eval-nodes", type=int, default=1)
    s.add_argument("--eval-gpus-per-node", type=int, default=None, help="default: --gpus-per-node")
    s.add_argument("--eval-tasks-per-node", type=int, default=None, help="default: --tasks-per-node")
    s.add_argument("--eval-time", type=int, default=60, metavar="MIN")
    p.add_argument(
        "--log-dir", type=Path, default=None, help="submitit folder (default: <train.output_dir>/slurm)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the batch script, submit nothing")
    return p


def _cpus_per_task(args: argparse.Namespace, workers: int) -> tuple[int, str]:
    """``--cpus-per-task`` or what the config's loaders need, and where the number comes from."""
    if args.cpus_per_task:
        return args.cpus_per_task, "--cpus-per-task"
    tasks = args.tasks_per_node or args.gpus_per_node or 1
    per_node = node_cpus(args.partition) if args.exclusive else None
    cpus = loader_cpus_per_task(workers, tasks, args.exclusive, per_node)
    if args.exclusive and per_node:
        return cpus, f"--exclusive: {per_node} CPUs per node / {tasks} tasks"
    return cpus, f"data.workers={workers} + 1"


def _resources(args: argparse.Namespace, cpus_per_task: int) -> tuple[Resources, Resources | None]:
    shared = dict(
        partition=args.partition,
        account=args.account,
        qos=args.qos,
        constraint=args.constraint,
        mem=args.mem,
        cpus_per_task=cpus_per_task,
        exclusive=args.exclusive,
        signal_delay_s=args.signal_delay,
    )
    train = Resources(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        tasks_per_node=args.tasks_per_node,
        time_min=args.time,
        **shared,
    )
    if not args.eval_after:
        return train, None
    gpus = args.gpus_per_node if args.eval_gpus_per_node is None else args.eval_gpus_per_node
    tasks = args.tasks_per_node if args.eval_tasks_per_node is None else args.eval_tasks_per_node
    return train, Resources(
        nodes=args.eval_nodes, gpus_per_node=gpus, tasks_per_node=tasks, time_min=args.eval_time, **shared
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        sweep = load_sweep(args.array) if args.array else None
        configs = plan_configs(cfg, sweep, lambda extra: load_config(args.config, [*args.overrides, *extra]))
        workers = max(c.data.workers for c in configs)
        cpus, source = _cpus_per_task(args, workers)
        if cpus < workers:
            print(
                f"scm-submit: warning: each rank gets {cpus} CPU(s) for {workers} loader workers "
                f"(data.workers); raise --cpus-per-task to {workers + 1} or lower data.workers",
                file=sys.stderr,
            )
        train_res, eval_res = _resources(args, cpus)
        if args.dry_run:
            print(f"# cpus-per-task: {cpus} ({source})")
            return _dry_run(args, configs, train_res, eval_res)
        jobs = submit(configs, train_res, eval_res=eval_res, log_dir=args.log_dir)
    except (ConfigError, SubmitError) as err:
        print(f"scm-submit: error: {err}", file=sys.stderr)
        return 2
    for job in jobs:
        print(
            f"submitted {job.kind} job {job.job_id}  output {job.output_dir}\n"
            f"  stdout {job.stdout}\n  stderr {job.stderr}"
        )
    return 0


def _dry_run(
    args: argparse.Namespace, configs: list, train_res: Resources, eval_res: Resources | None
) -> int:
    folder = log_folder(configs, args.log_dir)
    print("# training batch script (not submitted)")
    print(sbatch_script(folder, train_res.sbatch_parameters(configs[0].name), len(configs)))
    for i, c in enumerate(configs):
        print(f"# task {i}: output_dir {c.train.output_dir}")
    if eval_res is not None:
        print("# evaluation batch script, one per training job (not submitted)")
        print(
            sbatch_script(
                folder, eval_res.sbatch_parameters(f"{configs[0].name}-eval", "afterok:<training job id>")
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
