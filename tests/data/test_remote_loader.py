"""WebDataset splits streamed from URLs, from real servers on 127.0.0.1 (nginx, moto's S3
server, a small flaky HTTP server): the same batches as the local copy for every world size,
each shard checked as it streams, retries, cache, clear errors."""

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from loader_fixtures import small_config
from remote_fixtures import (
    Misbehaviour,
    copy_split,
    eval_batches,
    flaky_server,
    put_split,
    s3_client,
    same_batches,
    same_ranks,
    train_epochs,
    without_aws_credentials,
)

from data_shards.remote import RemoteError
from data_shards.schema import MANIFEST_NAME
from scm_dist.data import ShardError, build_eval_loader, build_train_loader
from scm_dist.data.remote_servers import nginx_serving

REPO = Path(__file__).resolve().parents[2]


def _cfg(location, **overrides):
    return small_config(location, "webdataset", remote_backoff_s=0.01, **overrides)


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def served(split40, tmp_path_factory):
    """split40 (WebDataset files) under nginx; yields (local split dir, its URL)."""
    root = tmp_path_factory.mktemp("www")
    local = copy_split(split40[0], root)
    with nginx_serving(root) as base:
        yield local, f"{base}/val"


@pytest.fixture(scope="module")
def on_s3(split40, s3_endpoint):
    return put_split(s3_endpoint, "data", "loader/val", split40[0])


@pytest.mark.parametrize("kind", ["http", "s3"])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_from_url_identical_to_local(served, on_s3, kind, world):
    local, http_url = served
    url = http_url if kind == "http" else on_s3
    expected = eval_batches(_cfg(local), world)
    streamed = eval_batches(_cfg(url), world)
    assert same_ranks(expected, streamed)
    keys = [k for rank in streamed for batch in rank for k in batch[3]]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 40  # every sample exactly once


@pytest.mark.parametrize("kind", ["http", "s3"])
def test_train_batches_and_resume_from_url_equal_local(served, on_s3, kind):
    local, http_url = served
    url = http_url if kind == "http" else on_s3
    expected = train_epochs(_cfg(local))
    streamed = train_epochs(_cfg(url))
    assert len(streamed) == len(expected) == 2 * (40 // (2 * 4))
    assert same_batches(expected, streamed)
    # resume at batch 2 of epoch 1 from a URL continues with the local run's batches
    loader = build_train_loader(_cfg(url), rank=0, world_size=2, seed=5)
    loader.load_state_dict({"epoch": 1, "batches": 2, "layout": loader.layout()})
    assert same_batches(expected[5 + 2 :], list(loader))


def test_url_with_ffcv_format_says_how_to_fetch(served):
    _, url = served
    with pytest.raises(ValueError, match=r"scm-shards fetch http://.*/val DIR.*data.format=webdataset"):
        build_train_loader(small_config(url, "ffcv"), rank=0, world_size=1)


def test_http_404_names_the_url_and_the_prefix_to_check(served):
    _, url = served
    with pytest.raises(RemoteError, match=r"/nope/manifest.json: HTTP 404 .*check the URL") as info:
        build_eval_loader(_cfg(url.replace("/val", "/nope")))
    assert "\n" not in str(info.value)


def _relabel_first_sample(path: Path) -> None:
    """Change the label digit in the first sample's JSON (a valid shard with other content)."""
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".json"))
        text = tar.extractfile(member).read()
    at = member.offset_data + text.index(b'"label":') + len(b'"label":')
    data = bytearray(path.read_bytes())
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    path.write_bytes(bytes(data))


def _altered_copy(split40, tmp_path) -> tuple[Path, str]:
    """A served copy whose second shard has one byte changed inside a JPEG (same size)."""
    local = copy_split(split40[0], tmp_path)
    shard = sorted(local.glob("*.tar"))[1]
    _flip_byte(shard, shard.stat().st_size // 2)
    return local, shard.name


def test_shard_altered_on_nginx_is_caught_by_the_digest(split40, tmp_path):
    _, name = _altered_copy(split40, tmp_path)
    with nginx_serving(tmp_path) as base, pytest.raises(ShardError) as info:
        eval_batches(_cfg(f"{base}/val", workers=0), 1)
    assert f"{base}/val/{name}: sha256 differs from the manifest" in str(info.value)


def test_shard_replaced_on_s3_is_caught(split40, s3_endpoint, tmp_path):
    url = put_split(s3_endpoint, "data", "altered/val", split40[0])
    names = sorted(p.name for p in split40[0].glob("*.tar"))
    client = s3_client(s3_endpoint)
    # one shard altered in place (same size), then another shard cut short
    data = bytearray((split40[0] / names[1]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    client.put_object(Bucket="data", Key=f"altered/val/{names[1]}", Body=bytes(data))
    with pytest.raises(ShardError, match=rf"{url}/{names[1]}: sha256 differs"):
        eval_batches(_cfg(url, workers=0), 1)
    client.put_object(Bucket="data", Key=f"altered/val/{names[1]}", Body=bytes(data[:-4096]))
    with pytest.raises(
        ShardError, match=rf"{url}/{names[1]} has {len(data) - 4096} bytes, the manifest says"
    ):
        eval_batches(_cfg(url, workers=0), 1)


def test_dropped_connections_are_resumed_and_the_run_matches_local(split40, tmp_path):
    local = copy_split(split40[0], tmp_path)
    expected = eval_batches(_cfg(local), 2)
    mis = Misbehaviour(drop_first=True)
    with flaky_server(local, mis) as base:
        streamed = eval_batches(_cfg(base), 2)
    assert same_ranks(expected, streamed)
    assert mis.dropped >= 2 and mis.ranged >= mis.dropped  # each drop resumed with a Range request
    mis = Misbehaviour(fail_503=True)
    with flaky_server(local, mis) as base:
        assert same_batches(train_epochs(_cfg(local), 1), train_epochs(_cfg(base), 1))
    assert mis.failed >= 2


def test_a_server_that_keeps_dropping_is_a_clear_error(split40, tmp_path):
    local = copy_split(split40[0], tmp_path)
    with flaky_server(local, Misbehaviour(always_drop=True)) as base, pytest.raises(ShardError) as info:
        eval_batches(_cfg(base, workers=0, remote_retries=2), 1)
    message = str(info.value)
    assert "gave up after 2 retries" in message and f"{base}/val-000000.tar" in message
    assert "\n" not in message


def test_cache_serves_verified_copies_and_never_a_stale_one(split40, tmp_path):
    root, cache = tmp_path / "www", tmp_path / "cache"
    local = copy_split(split40[0], root)
    expected = eval_batches(_cfg(local), 1)
    manifest = json.loads((local / MANIFEST_NAME).read_text())
    digests = {s["name"]: s["sha256"] for s in manifest["shards"] if s["format"] == "webdataset"}
    with nginx_serving(root) as base:
        url = f"{base}/val"
        assert same_ranks(expected, eval_batches(_cfg(url, cache_dir=str(cache)), 1))
        assert sorted(p.name for p in cache.iterdir()) == sorted(f"{d}.tar" for d in digests.values())
        # the server's copies are damaged now: the verified cache still serves the right data
        for name in digests:
            _flip_byte(local / name, 700)
        assert same_ranks(expected, eval_batches(_cfg(url, cache_dir=str(cache)), 1))
        # a damaged cached copy is caught, deleted, and not served again
        first = sorted(digests)[0]
        _flip_byte(cache / f"{digests[first]}.tar", 700)
        with pytest.raises(ShardError, match="cached copy: deleted"):
            eval_batches(_cfg(url, cache_dir=str(cache), workers=0), 1)
        assert not (cache / f"{digests[first]}.tar").exists()
        # a new version of a shard (new manifest digest) is read from the server, not the cache
        for name in digests:
            _flip_byte(local / name, 700)  # restored
        changed = local / first
        _relabel_first_sample(changed)
        entry = next(s for s in manifest["shards"] if s["name"] == first)
        entry["sha256"] = hashlib.sha256(changed.read_bytes()).hexdigest()
        (local / MANIFEST_NAME).write_text(json.dumps(manifest))
        fresh = eval_batches(_cfg(url, cache_dir=str(cache)), 1)
        assert (cache / f"{entry['sha256']}.tar").is_file()
        assert not same_ranks(expected, fresh)
        assert fresh[0][0][3] == expected[0][0][3] and fresh[0][0][1][0] != expected[0][0][1][0]


def test_missing_credentials_and_wrong_bucket_are_one_line_errors(split40, s3_endpoint, tmp_path):
    url = put_split(s3_endpoint, "data", "creds/val", split40[0])
    cmd = [sys.executable, "-m", "data_shards", "fetch"]
    env = without_aws_credentials(s3_endpoint, tmp_path)
    proc = subprocess.run([*cmd, url, str(tmp_path / "a")], env=env, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"scm-shards fetch: error: {url}/{MANIFEST_NAME}: no AWS credentials found; set AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY or AWS_PROFILE (and AWS_ENDPOINT_URL for an S3-compatible store)"
    ]
    wrong = "s3://no-such-bucket/creds/val"
    proc = subprocess.run([*cmd, wrong, str(tmp_path / "b")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"scm-shards fetch: error: {wrong}/{MANIFEST_NAME}: bucket 'no-such-bucket' does not exist at "
        f"{s3_endpoint}; check the bucket name (and AWS_ENDPOINT_URL for an S3-compatible store)"
    ]
    with pytest.raises(RemoteError, match=r"bucket 'no-such-bucket' does not exist"):
        build_eval_loader(_cfg(wrong))


def test_a_manifest_naming_a_path_is_refused(split40, tmp_path):
    local = copy_split(split40[0], tmp_path)
    manifest = json.loads((local / MANIFEST_NAME).read_text())
    manifest["shards"][0]["name"] = "../../etc/passwd"
    (local / MANIFEST_NAME).write_text(json.dumps(manifest))
    with nginx_serving(tmp_path) as base, pytest.raises(RemoteError, match="not a plain file name"):
        eval_batches(_cfg(f"{base}/val", workers=0), 1)


@pytest.mark.parametrize("url", ["https://user:secret@example.com/val", "s3://key:secret@bucket/val"])
def test_a_url_with_credentials_is_refused_without_echoing_them(url):
    with pytest.raises(RemoteError, match="carries credentials") as info:
        build_eval_loader(_cfg(url))
    assert "secret" not in str(info.value) and "user" not in str(info.value)


def test_each_rank_requests_only_the_shards_of_its_range(split40, tmp_path):
    local = copy_split(split40[0], tmp_path)
    entries = [
        s for s in json.loads((local / MANIFEST_NAME).read_text())["shards"] if s["format"] == "webdataset"
    ]
    starts = [sum(e["samples"] for e in entries[:i]) for i in range(len(entries))]
    requested = []
    for rank in range(3):
        log = Misbehaviour()
        with flaky_server(local, log) as base:
            batches = list(build_eval_loader(_cfg(base, workers=2), rank=rank, world_size=3))
        first, stop = 40 * rank // 3, 40 * (rank + 1) // 3
        mine = {e["name"] for e, s in zip(entries, starts) if s < stop and s + e["samples"] > first}
        assert log.seen == mine | {MANIFEST_NAME}
        assert sum(len(b) for b in batches) == stop - first
        requested.append(mine)
    assert len(entries) > 3 and all(len(m) < len(entries) for m in requested)
