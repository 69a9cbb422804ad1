"""scm-submit gives each rank the CPUs its loaders need (dry run, no cluster)."""

from __future__ import annotations

import pytest

from launch.cli import main as scm_submit
from launch.slurm import loader_cpus_per_task


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(f"name: big\ndata:\n  workers: 8\ntrain:\n  output_dir: {tmp_path / 'runs'}\n")
    return path


def test_default_is_loader_workers_plus_one_printed_in_the_dry_run(cfg_file, capsys):
    rc = scm_submit(["--config", str(cfg_file), "--gpus-per-node", "8", "--eval-after", "--dry-run"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "# cpus-per-task: 9 (data.workers=8 + 1)" in captured.out
    train, evaluation = captured.out.split("# evaluation batch script")
    assert "#SBATCH --cpus-per-task=9" in train
    assert "#SBATCH --cpus-per-task=9" in evaluation
    assert "warning" not in captured.err


def test_an_override_of_the_workers_changes_the_default(cfg_file, capsys):
    assert scm_submit(["--config", str(cfg_file), "--gpus-per-node", "4", "--dry-run", "data.workers=2"]) == 0
    assert "#SBATCH --cpus-per-task=3" in capsys.readouterr().out


def test_fewer_cpus_than_workers_warns_and_keeps_the_explicit_value(cfg_file, capsys):
    rc = scm_submit(["--config", str(cfg_file), "--gpus-per-node", "8", "--cpus-per-task", "2", "--dry-run"])
    assert rc == 0
    captured = capsys.readouterr()
    assert "#SBATCH --cpus-per-task=2" in captured.out
    assert "# cpus-per-task: 2 (--cpus-per-task)" in captured.out
    assert "2 CPU(s) for 8 loader workers" in captured.err


def test_exclusive_nodes_share_their_cpus_between_tasks():
    assert loader_cpus_per_task(8, 8, exclusive=True, cpus_per_node=128) == 16
    assert loader_cpus_per_task(8, 8, exclusive=False, cpus_per_node=128) == 9
    assert loader_cpus_per_task(4, 4, exclusive=True, cpus_per_node=None) == 5  # SLURM did not say
    assert loader_cpus_per_task(0, 64, exclusive=True, cpus_per_node=32) == 1
