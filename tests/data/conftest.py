"""Real shard splits shared by the loader tests (written once per session)."""

from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the session, boto3 pointed at it by AWS_* variables
    (restored afterwards); bucket ``data`` exists."""
    import os

    from scm_dist.data.remote_servers import create_bucket, s3_environment, s3_server

    with s3_server() as endpoint:
        env = s3_environment(endpoint)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        create_bucket(endpoint, "data")
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
