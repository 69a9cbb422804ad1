# scm-dist: set-up, demo, tests and benchmarks. Every target works on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := pkg-config libopencv-dev libturbojpeg0-dev slurm-wlm munge nginx
export DS_ACCELERATOR ?= cpu

.PHONY: setup apt demo lint test bench gpu-wheels gpu-check gpu-rehearsal gpu-check-quick slurm-up slurm-down clean-venv

setup: apt $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q numpy
	$(PY) -m pip install -q --no-build-isolation ffcv==1.0.2 || $(PY) -m pip install -q ffcv==1.0.2
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip freeze > $(VENV)/tested-set.txt
	touch $(STAMP)

demo: setup
	$(PY) -m scm_dist.demo

# ruff (lint + format, config in pyproject.toml) and mypy over the packages
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m scm_dist.bench all --json

# GPU machine (no network, its own Python 3.12 + torch): `make gpu-wheels` here, carry
# .gpu_wheels/ there, then `make gpu-check` (or scripts/gpu_check.sh OUT_DIR) there.
gpu-wheels: setup
	PY=$(PY) scripts/gpu_wheels.sh

gpu-check:
	scripts/gpu_check.sh $${OUT:-.}

# the check at --quick sizes under the GPU machine's Python 3.12 / torch 2.11 stack (own venv,
# about 5 GB downloaded once): catches a missing wheel or an API too new for that torch
gpu-rehearsal: setup
	PY=$(PY) scripts/gpu_rehearsal.sh $${OUT:-gpu_rehearsal}

# every step of the check on this CPU, tiny sizes (what CI runs)
gpu-check-quick: setup
	PY=$(PY) scripts/gpu_check.sh $${OUT:-.} --quick

# the local cluster module is stdlib-only: system python is enough
slurm-up: apt
	python3 -m launch.local_slurm up

slurm-down:
	python3 -m launch.local_slurm down

clean-venv:
	rm -rf $(VENV)
