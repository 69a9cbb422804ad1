"""scm-export refuses an --out that would destroy its input or cannot be written, in one line."""

from __future__ import annotations

import pytest
import torch

from scm_dist.export import main as scm_export


def _checkpoint(path):
    torch.save({"state_dict": {"blocks.0.w": torch.ones(2), "scm.layers.0.lam": torch.ones(1)}}, path)


def test_out_equal_to_the_input_is_refused_and_the_input_kept(tmp_path):
    path = tmp_path / "model.pt"
    _checkpoint(path)
    before = path.read_bytes()
    with pytest.raises(SystemExit, match="is the input checkpoint"):
        scm_export(["--checkpoint", str(path), "--out", str(tmp_path / "." / "model.pt")])
    assert path.read_bytes() == before


@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_out_that_cannot_be_a_file_is_one_line_error(tmp_path, where):
    path = tmp_path / "model.pt"
    _checkpoint(path)
    (tmp_path / "plain").write_text("x")
    out = tmp_path / "plain" / "sub" / "enc.pt" if where == "under a file" else tmp_path
    with pytest.raises(SystemExit) as info:
        scm_export(["--checkpoint", str(path), "--out", str(out)])
    message = str(info.value.code)
    assert message.startswith("scm-export: error: --out") and "\n" not in message
    scm_export(["--checkpoint", str(path), "--out", str(tmp_path / "enc.pt")])
    assert (tmp_path / "enc.pt").is_file()
