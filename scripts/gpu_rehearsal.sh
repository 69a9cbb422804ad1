#!/usr/bin/env bash
# The GPU check rehearsed on this CPU host with the GPU machine's software: Python 3.12 and
# its package versions (scripts/gpu_machine_requirements.txt: torch 2.11, torchvision 0.26,
# ...) in a venv of its own (about 5 GB, downloaded once), the carried wheels installed the
# way scripts/gpu_check.sh installs them there, every step at --quick sizes. It catches what
# CI's venv cannot: a package the GPU machine lacks, an API newer than its torch.
# Usage: scripts/gpu_rehearsal.sh [OUT_DIR]   (make gpu-rehearsal)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${GPU_REHEARSAL_VENV:-.gpu_rehearsal_venv}
if [ ! -x "$VENV/bin/python" ]; then
  PY312=${PY312:-$(command -v python3.12 || true)}
  [ -n "$PY312" ] || { echo "gpu rehearsal: no python3.12 here (set PY312=/path/to/python3.12)" >&2; exit 1; }
  "$PY312" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -r scripts/gpu_machine_requirements.txt
fi
[ -d .gpu_wheels ] || PY=${PY:-.venv/bin/python} scripts/gpu_wheels.sh
rm -rf .gpu_wheels/site  # installed afresh, as on the GPU machine, and not left to be carried
trap 'rm -rf .gpu_wheels/site' EXIT
PY="$VENV/bin/python" scripts/gpu_check.sh "${1:-gpu_rehearsal}" --quick
