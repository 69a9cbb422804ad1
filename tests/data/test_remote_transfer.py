"""``scm-shards upload`` to a real S3-compatible server and ``scm-shards fetch`` back:
verified, resumable, manifest last, and the streamed / fetched split reads like the original."""

import shutil

import pytest
from loader_fixtures import small_config
from remote_fixtures import Misbehaviour, eval_batches, flaky_server, s3_client, same_ranks

from data_shards.cli import main as shards_main
from data_shards.manifest import verify_split
from data_shards.schema import MANIFEST_NAME, read_manifest


def _keys(endpoint: str, prefix: str) -> list[str]:
    listing = s3_client(endpoint).list_objects_v2(Bucket="data", Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_upload_then_stream_and_fetch_round_trip(split10, s3_endpoint, tmp_path, capsys):
    split = split10[0]  # WebDataset shards and a .beton
    url = "s3://data/round/val"
    assert shards_main(["upload", str(split), url]) == 0
    files = {e.name for e in read_manifest(split).shards}
    assert _keys(s3_endpoint, "round/val/") == sorted(f"round/val/{n}" for n in files | {MANIFEST_NAME})
    # streamed from S3 = read locally, for 1..3 ranks
    for world in (1, 2, 3):
        assert same_ranks(
            eval_batches(small_config(split, "webdataset"), world),
            eval_batches(small_config(url, "webdataset"), world),
        )
    # a rerun finds everything there and uploads only the manifest again
    capsys.readouterr()
    assert shards_main(["upload", str(split), url]) == 0
    assert "1 file(s) uploaded" in capsys.readouterr().out
    # fetch: a verified local split again, FFCV included
    out = tmp_path / "fetched"
    assert shards_main(["fetch", url, str(out)]) == 0
    assert verify_split(out) == []
    assert same_ranks(
        eval_batches(small_config(split, "ffcv"), 2), eval_batches(small_config(out, "ffcv"), 2)
    )


def test_upload_refuses_a_damaged_split_and_writes_no_manifest(split10, s3_endpoint, tmp_path):
    local = tmp_path / "val"
    shutil.copytree(split10[0], local)
    shard = sorted(local.glob("*.tar"))[-1]
    shard.write_bytes(shard.read_bytes()[:-512])
    assert shards_main(["upload", str(local), "s3://data/damaged/val"]) == 2
    assert _keys(s3_endpoint, "damaged/") == []


def test_upload_of_an_out_folder_writes_each_split_under_the_url(tmp_path, s3_endpoint):
    out = tmp_path / "synth"
    assert shards_main(["synth", "--out", str(out), "--train", "12", "--val", "6", "--image-size", "32"]) == 0
    assert shards_main(["upload", str(out), "s3://data/splits"]) == 0
    for split in ("train", "val"):
        assert f"splits/{split}/{MANIFEST_NAME}" in _keys(s3_endpoint, f"splits/{split}/")


def test_fetch_resumes_a_partial_file_and_refuses_a_bad_one(split10, tmp_path, capsys):
    local = tmp_path / "www"
    shutil.copytree(split10[0], local)
    shards = sorted(local.glob("*.tar"))
    out = tmp_path / "fetched"
    out.mkdir()
    # an interrupted fetch left half of the first shard: it is continued (one Range request)
    data = shards[0].read_bytes()
    (out / f"{shards[0].name}.part").write_bytes(data[: len(data) // 2])
    served = Misbehaviour()
    with flaky_server(local, served) as base:
        assert shards_main(["fetch", base, str(out)]) == 0
        assert served.ranged == 1
        assert verify_split(out) == []
        assert not list(out.glob("*.part"))
        # a partial file that does not match the server's bytes fails the digest and is
        # deleted; no manifest is written
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / f"{shards[0].name}.part").write_bytes(b"\0" * 100)
        capsys.readouterr()
        assert shards_main(["fetch", base, str(bad)]) == 2
        assert f"{base}/{shards[0].name}: sha256 differs" in capsys.readouterr().err
        assert not (bad / MANIFEST_NAME).exists() and not list(bad.glob("*.part"))
        assert shards_main(["fetch", base, str(bad)]) == 0
        assert verify_split(bad) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "file:///tmp/x"])
def test_upload_only_to_s3(split10, url, capsys):
    assert shards_main(["upload", str(split10[0]), url]) == 2
    assert "s3://" in capsys.readouterr().err
