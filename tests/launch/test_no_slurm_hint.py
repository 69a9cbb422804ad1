"""Without SLURM, scm-submit's error names commands that work here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from launch.cli import main as scm_submit

REPO = Path(__file__).resolve().parents[2]


def test_no_slurm_hint_names_runnable_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    code = scm_submit(["--config", str(REPO / "configs/experiments/synthetic_scm.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "no SLURM here" in err
    commands = re.findall(r"`([^`]+)`", err)
    launch = next(c for c in commands if c.startswith("accelerate launch"))
    module = re.search(r"-m (\S+)", launch).group(1)
    for config in re.findall(r"configs/\S+\.yaml", err):
        assert (REPO / config).is_file(), config
    help_text = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert help_text.returncode == 0 and "--config" in help_text.stdout, help_text.stdout + help_text.stderr
    assert any("make slurm-up" in c for c in commands)
    assert "slurm-up:" in (REPO / "Makefile").read_text()
