"""Shared pytest set-up: deterministic CPU threads and the DeepSpeed CPU accelerator."""

import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")
