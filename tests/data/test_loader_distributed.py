"""Real multi-process runs: three ranks in a gloo group, started the way launchers do
(RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).parent / "distributed_loader_worker.py"
WORLD = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_ranks(eval_dir, train_dir, tmp_path) -> list[dict]:
    out = tmp_path / "ranks.json"
    port = _free_port()
    procs = []
    for rank in range(WORLD):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(eval_dir), str(train_dir), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def ranks(split10, split40, tmp_path_factory) -> list[dict]:
    return _run_ranks(split10[0], split40[0], tmp_path_factory.mktemp("ranks"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["webdataset", "ffcv"])
def test_three_ranks_eval_exactly_once_and_train_disjoint(ranks, split10, fmt):
    eval_samples = split10[1]
    mine = [r[fmt] for r in ranks]
    # eval: 10 samples on 3 ranks (2 workers each for WebDataset), every key exactly once
    keys = [k for r in mine for k in r["eval_keys"]]
    expected = (
        [s.info.key for s in eval_samples]
        if fmt == "webdataset"
        else [str(s.info.sample_id) for s in eval_samples]
    )
    assert sorted(keys) == sorted(expected)
    assert [len(r["eval_keys"]) for r in mine] == [3, 3, 4]
    # train: the same number of steps everywhere, ranks disjoint within an epoch
    assert {r["steps"] for r in mine} == {40 // (WORLD * 4)}
    for epoch in range(2):
        per_rank = [{k for batch in r["epochs"][epoch] for k in batch} for r in mine]
        assert all(len(r["epochs"][epoch]) == 3 for r in mine)
        assert sum(map(len, per_rank)) == len(set.union(*per_rank)) == 36
    assert all(r["epochs"][0] != r["epochs"][1] for r in mine)
