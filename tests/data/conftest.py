"""Real shard splits shared by the loader tests (written once per session)."""

from pathlib import Path

import pytest
from loader_fixtures import convert_split


@pytest.fixture(scope="session")
def split40(tmp_path_factory) -> tuple[Path, list]:
    """40 samples converted by data_shards: several uneven WebDataset shards and a .beton."""
    return convert_split(tmp_path_factory.mktemp("split40"), 40, shard_size_mb=0.13)


@pytest.fixture(scope="session")
def split10(tmp_path_factory) -> tuple[Path, list]:
    """10 samples (10 on 3 ranks x 2 workers) in a few shards and a .beton."""
    return convert_split(tmp_path_factory.mktemp("split10"), 10, shard_size_mb=0.06)
