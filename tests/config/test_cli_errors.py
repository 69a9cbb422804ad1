"""The command lines turn the user's mistakes into one clear line and a non-zero exit."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from scm_dist.cli import eval_main, train_main
from scm_dist.export import main as export_main

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs/experiments/demo_scm.yaml")


def _exit_message(call) -> str:
    with pytest.raises(SystemExit) as stop:
        call()
    assert stop.value.code not in (0, None)
    return str(stop.value.code)


def test_scm_train_errors(tmp_path):
    message = _exit_message(lambda: train_main(["--config", CONFIG, "optim.lrr=1"]))
    assert "unknown config key 'optim.lrr'" in message and "optim.lr" in message
    message = _exit_message(
        lambda: train_main(
            ["--config", CONFIG, f"data.train_dir={tmp_path}/missing", f"train.output_dir={tmp_path}/out"]
        )
    )
    assert message.startswith("scm-train: error:") and "missing does not exist" in message
    # GPU decode reads WebDataset shards only: another format is refused, not silently decoded on the CPU
    folder = tmp_path / "folder" / "class0"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    message = _exit_message(
        lambda: train_main(
            [
                "--config",
                CONFIG,
                "data.decode=gpu",
                "data.format=folder",
                f"data.train_dir={folder.parent}",
                f"train.output_dir={tmp_path}/out",
            ]
        )
    )
    assert message.startswith("scm-train: error: data.decode=gpu decodes WebDataset shards only")
    assert "set data.decode=cpu" in message


def test_scm_eval_and_export_name_the_missing_file(tmp_path):
    message = _exit_message(
        lambda: eval_main(["--config", CONFIG, "--checkpoint", str(tmp_path / "gone.pt")])
    )
    assert "scm-eval: error: checkpoint not found" in message and "gone.pt" in message
    message = _exit_message(
        lambda: export_main(["--checkpoint", str(tmp_path / "gone.pt"), "--out", str(tmp_path / "x.pt")])
    )
    assert "scm-export: error: checkpoint not found" in message
