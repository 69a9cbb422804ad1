"""``python -m launch.local_slurm up|down|status``: the local SLURM cluster."""

from __future__ import annotations

import argparse
import sys

from launch.local_slurm.cluster import DEFAULT_STATE_DIR, LocalSlurm, LocalSlurmError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.local_slurm", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir",
        default=str(DEFAULT_STATE_DIR),
        help="where config, keys, logs and spools live; munge and slurm users must be able to "
        "reach it (default for this checkout: %(default)s)",
    )
    args = parser.parse_args(argv)
    cluster = LocalSlurm(state_dir=args.state_dir)
    try:
        if args.action == "up":
            cluster.up()
            print(f"local SLURM is up (nodes node1, node2). Use it with:\n  export SLURM_CONF={cluster.conf}")
        elif args.action == "down":
            stopped = cluster.down()
            print(f"stopped: {', '.join(stopped)}" if stopped else "local SLURM was not running")
        else:
            for name, pid in cluster.running().items():
                print(f"{name:14s} {'pid ' + str(pid) if pid else 'not running'}")
    except LocalSlurmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
