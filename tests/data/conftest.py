"""Real shard splits shared by the loader tests (written once per session)."""
from pathlib import Path

import pytest

from loader_fixtures import write_split


@pytest.fixture(scope="session")
def split40(tmp_path_factory) -> tuple[Path, list]:
    """40 samples: six WebDataset shards of 7 (the last of 5) and one .beton."""
    directory = tmp_path_factory.mktemp("split40")
    return directory, write_split(directory, 40, shard_size=7)


@pytest.fixture(scope="session")
def split10(tmp_path_factory) -> tuple[Path, list]:
    """10 samples in shards of 3, 3, 3, 1 and one .beton (10 on 3 ranks x 2 workers)."""
    directory = tmp_path_factory.mktemp("split10")
    return directory, write_split(directory, 10, shard_size=3)
