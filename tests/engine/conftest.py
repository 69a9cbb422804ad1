"""Synthetic shards shared by the engine tests (written once per session)."""

from pathlib import Path

import pytest

from data_shards.cli import main as shards_main


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory) -> Path:
    """256 train / 48 val images of 64 px, both shard formats."""
    root = tmp_path_factory.mktemp("synthetic")
    code = shards_main(
        ["synth", "--out", str(root), "--train", "256", "--val", "48", "--image-size", "64", "--seed", "3"]
    )
    assert code == 0
    return root
