"""One-line errors for an unusable output_dir and a full disk (issue 19, item 10)."""

import subprocess
from pathlib import Path

import pytest
from safety_workers import train_argv

from scm_dist.cli import train_main


def _one_line_error(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        train_main(argv)
    message = str(exit_.value.code)
    assert message.startswith("scm-train: error:") and "\n" not in message, message
    return message


def test_output_dir_that_is_a_file_or_under_a_file(synthetic_shards, tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    assert f"train.output_dir={file} is a file, not a directory" in _one_line_error(
        train_argv(synthetic_shards, file)
    )
    assert "a parent of it is a file" in _one_line_error(train_argv(synthetic_shards, file / "run"))


@pytest.fixture
def tmpfs(tmp_path):
    """A mounted tmpfs (needs root); yields a function that mounts one with options."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        path = tmp_path / f"mnt{len(mounted)}"
        path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        )
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here (not root?): {proc.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)  # lazy: files may be open


def test_read_only_output_dir(synthetic_shards, tmpfs):
    mount = tmpfs("size=1m,ro")
    message = _one_line_error(train_argv(synthetic_shards, mount / "run"))
    assert f"train.output_dir={mount / 'run'}" in message and "read-only file system" in message


def test_full_disk_while_saving_names_the_file(synthetic_shards, tmpfs):
    mount = tmpfs("size=3m")  # config, metrics and logs fit; the model (6 MB) does not
    message = _one_line_error(train_argv(synthetic_shards, mount / "run"))
    assert "no space left on the device while writing" in message, message
    assert str(mount / "run" / "checkpoints" / ".step_00000002.partial") in message
    assert not (mount / "run" / "checkpoints" / ".step_00000002.partial").exists()  # space given back
