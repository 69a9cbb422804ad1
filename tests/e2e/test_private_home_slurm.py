"""The local SLURM cluster works for a checkout inside a private folder (mode 0700, as many
home directories are): its state lives outside the checkout, one directory per checkout.
Starts real daemons (munged, slurmctld, 2 slurmd) on the fixed ports: skipped while another
cluster runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from launch.local_slurm import LocalSlurm, missing_binaries
from launch.local_slurm.cluster import LocalSlurmError, default_state_dir

REPO = Path(__file__).resolve().parents[2]


def test_state_dirs_are_outside_the_checkout_and_one_per_checkout(tmp_path):
    first, second = default_state_dir(tmp_path / "a" / "clone"), default_state_dir(tmp_path / "b" / "clone")
    assert first != second
    assert not first.is_relative_to(tmp_path) and not default_state_dir().is_relative_to(REPO)
    assert default_state_dir(tmp_path / "a" / "clone") == first


def test_unreachable_state_dir_is_refused_with_what_to_change(tmp_path):
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    with pytest.raises(LocalSlurmError, match=r"munge user and cannot reach .*mode 0700.*chmod o\+x"):
        LocalSlurm(state_dir=private / "state")._prepare_state_dir()


@pytest.mark.slow
def test_cluster_of_a_checkout_in_a_private_home_starts_and_runs_a_job(tmp_path):
    if os.geteuid() != 0 or missing_binaries():
        pytest.skip("needs root and the slurm-wlm and munge packages")
    if subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True).returncode == 0:
        pytest.skip("another local SLURM cluster runs (the ports are fixed); run this test alone")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    clone = home / "scm-dist"
    shutil.copytree(REPO / "launch", clone / "launch", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(clone)}
    state = default_state_dir(clone)

    def local_slurm(action: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "launch.local_slurm", action],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    try:
        up = local_slurm("up")
        assert up.returncode == 0, up.stdout + up.stderr
        conf = re.search(r"export SLURM_CONF=(\S+)", up.stdout).group(1)
        assert Path(conf) == state / "slurm.conf" and not Path(conf).is_relative_to(clone)
        client = {**os.environ, "SLURM_CONF": conf}
        job = subprocess.run(
            ["srun", "-N", "2", "-n", "2", "hostname"],
            capture_output=True,
            text=True,
            env=client,
            timeout=120,
        )
        assert job.returncode == 0 and len(job.stdout.split()) == 2, job.stdout + job.stderr
    finally:
        down = local_slurm("down")
        shutil.rmtree(state, ignore_errors=True)
    assert down.returncode == 0 and "munged" in down.stdout, down.stdout + down.stderr
