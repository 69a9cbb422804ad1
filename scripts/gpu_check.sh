#!/usr/bin/env bash
# The GPU check on a GPU machine, from the repo root: installs the carried wheels
# (.gpu_wheels/, from `make gpu-wheels`) into .gpu_wheels/site without network or
# dependencies, then runs `python -m scm_dist.bench gpu` with the repo on PYTHONPATH
# (the project itself is not pip-installed: pyproject's version bounds stay out of it).
# Usage: scripts/gpu_check.sh [OUT_DIR] [bench gpu options, e.g. --quick or --steps ...]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT_DIR=${1:-.}
shift || true
WHEELS=${GPU_WHEELS:-.gpu_wheels}
SITE="$WHEELS/site"
# install the carried wheels only where the packages are missing (the GPU machine)
if ! "$PY" -c 'import deepspeed, webdataset, braceexpand, submitit, simplejpeg' 2> /dev/null; then
  if compgen -G "$WHEELS/*.whl" > /dev/null && [ ! -d "$SITE" ]; then
    if ! "$PY" -m pip install -q --no-index --no-deps --target "$SITE" "$WHEELS"/*.whl; then
      # no pip: a wheel is a zip archive; unpacking it is the install for pure-Python code
      "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
        "$SITE" "$WHEELS"/*.whl
    fi
  fi
  [ -d "$SITE" ] || echo "gpu check: deepspeed/webdataset/simplejpeg missing and no $WHEELS/ (run make gpu-wheels)" >&2
  export PYTHONPATH="$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# the Makefile exports DS_ACCELERATOR=cpu for the CPU host; here DeepSpeed must find CUDA
if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  export DS_ACCELERATOR=cuda
fi
mkdir -p "$OUT_DIR"
exec "$PY" -m scm_dist.bench gpu --json --out "$OUT_DIR/gpu_check.json" "$@"
