"""The runtime: ranks from the launcher, collectives on the runtime's device, the stop vote."""

import pytest
import torch
import torch.distributed as dist
from dist import run_ranks

from scm_dist.runtime import DeviceError, Runtime


def test_a_collective_refuses_a_tensor_off_the_runtime_device():
    runtime = Runtime(rank=0, local_rank=0, world_size=1, device=torch.device("meta"), distributed=False)
    with pytest.raises(DeviceError, match="collective on a cpu tensor, but this runtime's device is meta"):
        runtime.all_reduce(torch.zeros(1))
    assert runtime.sum(torch.ones(2)).device.type == "meta"  # sum and max place it first
    assert runtime.max(torch.ones(2)).device.type == "meta"


@pytest.mark.parametrize("world", [1, 3])
def test_collectives_and_the_stop_vote_on_real_processes(synthetic_shards, tmp_path, world):
    """At world size 1 a launched process still has a group, and the collectives run."""
    job = dict(kind="collectives", shards=str(synthetic_shards), output_dir=str(tmp_path), overrides=[])
    results = run_ranks(job, world)
    for rank, result in enumerate(results):
        assert result["distributed"] and result["world_size"] == world
        assert result["sum"] == world * (world + 1) / 2 and result["max"] == world - 1
        assert result["flag_from_last"] is True and result["flag_from_first"] is (world == 1)
        # rank 1 (or the only rank, which raises nothing) raised its flag at poll 3:
        # every rank learns it at poll 4, none before
        expected = [False] * 4 + [world > 1, False]
        assert result["polls"] == expected and result["after_close"] is False, (rank, result)
        counted = result["collectives"]
        assert counted["runtime.py:all_reduce"] == 6 + 2 and counted["runtime.py:broadcast"] == 2
        assert counted["runtime.py:barrier"] == 1


@pytest.mark.parametrize(
    "engine",
    [[], ["train.engine=deepspeed", "train.deepspeed_config=configs/deepspeed/zero2.json"]],
    ids=["accelerate", "deepspeed"],
)
def test_closing_after_training_frees_the_group(synthetic_shards, tmp_path, engine):
    """A group something still references keeps its threads running into the interpreter's
    exit, where a rank that left first died with SIGABRT. Two holders: DeepSpeed's comm
    module pins the group it finds at import (Accelerate imports it), and the DeepSpeed
    engine's gradient hooks keep the engine alive."""
    job = dict(kind="train_then_close", shards=str(synthetic_shards), output_dir=str(tmp_path))
    job["overrides"] = ["train.max_steps=2", *engine]
    for result in run_ranks(job, 2):
        assert result["status"] == "completed"
        assert not [name for name in result["threads"] if "gloo" in name], result["threads"]


def test_a_group_of_one_without_a_launcher_when_asked(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    alone = Runtime.start()
    assert (alone.rank, alone.world_size, alone.distributed) == (0, 1, False)
    runtime = Runtime.start(need_group=True)  # DeepSpeed's case
    try:
        assert runtime.distributed and dist.get_world_size() == 1
        assert runtime.sum(torch.tensor([2.0])).item() == 2.0
    finally:
        runtime.close()
    assert not dist.is_initialized()
