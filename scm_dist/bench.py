"""Benchmarks, one JSON object each: ``python -m scm_dist.bench NAME [--json] [options]``.

Names: model (fused vs naive attention), all (every benchmark registered below).
"""
from __future__ import annotations

import importlib
import json
import sys

BENCHMARKS = {
    "model": "scm_dist.models.benchmark",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*BENCHMARKS, "all"):
        sys.exit(f"usage: python -m scm_dist.bench {{{','.join(BENCHMARKS)},all}} [--json] "
                 "[benchmark options]")
    name, options = argv[0], [a for a in argv[1:] if a != "--json"]
    names = list(BENCHMARKS) if name == "all" else [name]
    results = {n: importlib.import_module(BENCHMARKS[n]).run(options) for n in names}
    print(json.dumps(results if name == "all" else results[name], indent=2))


if __name__ == "__main__":
    main()
