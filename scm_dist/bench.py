"""Benchmarks, one JSON object each: ``python -m scm_dist.bench NAME [--json] [options]``.

Names: model (efficient vs naive model path), train (backends, precisions, processes),
shards (conversion), loaders (WebDataset / FFCV / folder), eval (fast exact box search),
all (every one, in that order); gpu (the prepared GPU check, scm_dist/gpu/; not
part of all).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

BENCHMARKS = {
    "model": "scm_dist.models.benchmark",
    "train": "scm_dist.engine.benchmark",
    "shards": "data_shards.benchmark",
    "loaders": "scm_dist.data.benchmark",
    "eval": "scm_dist.evaluation.benchmark",
}
CHECKS = {"gpu": "scm_dist.gpu"}  # run on their own, never by "all"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*BENCHMARKS, "all", *CHECKS):
        names = ",".join([*BENCHMARKS, "all", *CHECKS])
        sys.exit(f"usage: python -m scm_dist.bench {{{names}}} [--json] [benchmark options]")
    name, options = argv[0], [a for a in argv[1:] if a != "--json"]
    if name != "all":
        module = BENCHMARKS.get(name) or CHECKS[name]
        print(json.dumps(importlib.import_module(module).run(options), indent=2, default=str))
        return
    # each benchmark in a fresh interpreter: one's threads (OpenMP, OpenCV) must not be
    # inherited by the next one's forked workers
    results = {}
    for each in BENCHMARKS:
        out = subprocess.run(
            [sys.executable, "-m", "scm_dist.bench", each, *options],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        )
        results[each] = json.loads(out.stdout)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
