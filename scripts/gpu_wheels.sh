#!/usr/bin/env bash
# Wheels the GPU machine lacks (Python 3.12, x86-64, no network), into .gpu_wheels/ (git-ignored)
# for scripts/gpu_check.sh to install there. Versions: the ones this venv was tested with.
# DeepSpeed is built here as a wheel with its ops left to JIT (DS_BUILD_OPS=0).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${GPU_WHEELS:-.gpu_wheels}
# what deepspeed, webdataset, submitit and our strict JPEG check (simplejpeg) need beyond the
# GPU machine's torch, timm and accelerate stack (psutil, packaging, numpy, tqdm, pyyaml,
# cloudpickle are there)
PACKAGES=(webdataset braceexpand submitit simplejpeg hjson py-cpuinfo einops msgpack ninja pydantic
  pydantic-core annotated-types typing-inspection typing-extensions)
pinned=()
for name in "${PACKAGES[@]}"; do
  version=$("$PY" -m pip show "$name" 2>/dev/null | awk '/^Version:/ {print $2}')
  [ -n "$version" ] || { echo "gpu-wheels: $name is not installed in $PY's environment (make setup)" >&2; exit 1; }
  pinned+=("$name==$version")
done
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" -m pip download -q --no-deps --only-binary=:all: --dest "$OUT" \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 --platform any "${pinned[@]}"
ds_version=$("$PY" -m pip show deepspeed | awk '/^Version:/ {print $2}')
DS_BUILD_OPS=0 DS_ACCELERATOR=cuda "$PY" -m pip wheel -q --no-deps --no-build-isolation \
  --wheel-dir "$OUT" "deepspeed==$ds_version"
ls -1 "$OUT"
du -sh "$OUT"
