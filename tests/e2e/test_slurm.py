"""scm-submit against a real SLURM cluster started on this host (munge, slurmctld, 2 slurmd).

The module starts the local cluster itself (unless one is already up) and stops it at the
end. The first tests run the real engine on a tiny synthetic config from shards; the
others run a small real distributed trainer with the engine's contract
(tests/launch/toy_engine.py: gloo, periodic checkpoints, resume) where only the launcher's
behaviour is under test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from data_shards.cli import main as shards_main
from launch.cli import main as scm_submit
from launch.local_slurm import LocalSlurm, missing_binaries
from launch.slurm import Resources, plan_configs, submit
from launch.sweep import load_sweep
from scm_dist.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launch"))
import toy_engine  # noqa: E402

cloudpickle.register_pickle_by_value(toy_engine)  # the job processes cannot import tests/

pytestmark = pytest.mark.slow
CPU_2_NODES = Resources(nodes=2, tasks_per_node=1, time_min=10)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """The local cluster, up for this module; SLURM_CONF points the clients at it."""
    local = LocalSlurm()
    was_up = all(local.running().values())  # e.g. `make slurm-up` before the tests
    missing = missing_binaries()
    if not was_up and missing and os.geteuid() != 0:
        pytest.skip(
            f"no SLURM here (missing {', '.join(missing)}) and not root to start "
            "one: install slurm-wlm and munge, then `sudo make slurm-up`"
        )
    if not was_up:
        local.up()  # a clear LocalSlurmError when it cannot
    # sbatch exports the submitter's environment: one thread per task everywhere, so the
    # SLURM runs and the local run below do the same arithmetic
    patch = pytest.MonkeyPatch()
    patch.setenv("SLURM_CONF", str(local.conf))
    patch.setenv("OMP_NUM_THREADS", "1")
    yield local
    patch.undo()
    if not was_up:
        local.down()  # also ends any job a failed test left running


def job_field(job_id: str, field: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    return re.search(rf"\b{field}=(\S*)", out).group(1)


def wait_for(job_id: str, states: set[str], log_dir: Path, timeout_s: float = 120) -> str:
    """Poll the controller until the job reaches one of ``states``; fail with its logs."""
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = job_field(job_id, "JobState")
        if state in states:
            return state
        if state in {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}:
            break
        time.sleep(0.5)
    logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in sorted(log_dir.rglob("*_log.*")))
    pytest.fail(f"job {job_id} is {state}, expected {states}\n{logs}")


def wait_progress(output_dir: Path, at_least: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done = int((output_dir / "progress.txt").read_text())
        except (FileNotFoundError, ValueError):
            done = 0
        if done >= at_least:
            return done
        time.sleep(0.2)
    pytest.fail(f"training in {output_dir} did not reach step {at_least}")


def toy_cfg(out: Path, steps: int = 24, *extra: str):
    return load_config(
        None,
        [
            f"train.output_dir={out}",
            f"train.max_steps={steps}",
            "train.checkpoint_every=4",
            "optim.lr=0.1",
            *extra,
        ],
    )


def submit_toy(configs, res=CPU_2_NODES):
    return submit(configs, res, train_fn=toy_engine.train)


def starts(out: Path) -> list[list[str]]:
    return [line.split() for line in (out / "starts_rank0.txt").read_text().splitlines()]


ENGINE_OVERRIDES = [
    "data.batch_size=8",
    "data.workers=0",
    "data.shuffle_buffer=64",
    "model.depth=2",
    "train.epochs=6",
    "train.checkpoint_every=1000",
    "train.log_every=1",
    "optim.lr_scaling=none",
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    assert (
        shards_main(
            [
                "synth",
                "--out",
                str(root),
                "--train",
                "128",
                "--val",
                "32",
                "--image-size",
                "64",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    return root


def engine_overrides(shards: Path, out: Path, evaluate: bool = False) -> list[str]:
    return [
        f"data.train_dir={shards}/train",
        f"data.val_dir={shards}/val",
        f"train.output_dir={out}",
        *ENGINE_OVERRIDES,
        f"eval.after_train={str(evaluate).lower()}",
        "eval.num_pictures=2",
    ]


def engine_cfg(shards: Path, out: Path, evaluate: bool = False):
    return load_config("configs/experiments/synthetic_scm.yaml", engine_overrides(shards, out, evaluate))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged_steps(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (FileNotFoundError, ValueError):
        return 0


def final_state(out: Path) -> dict:
    import torch

    return torch.load(out / "model_final.pt", weights_only=False)["state_dict"]


def assert_same_weights(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def uninterrupted(shards, tmp_path_factory) -> dict[str, Path]:
    """The same training twice, at the same time: a 2-node SLURM job and a local torchrun."""
    root = tmp_path_factory.mktemp("uninterrupted")
    local = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("torchrun")),
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            "-m",
            "scm_dist.cli_train",
            "--config",
            "configs/experiments/synthetic_scm.yaml",
            *engine_overrides(shards, root / "local", evaluate=True),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    cfg = engine_cfg(shards, root / "slurm", evaluate=True)
    (job,) = submit(plan_configs(cfg, None, None), CPU_2_NODES)
    wait_for(job.job_id, {"COMPLETED"}, root / "slurm", timeout_s=240)
    _, err = local.communicate(timeout=240)
    assert local.returncode == 0, err[-3000:]
    return {"slurm": root / "slurm", "local": root / "local", "job_id": job.job_id}


def test_two_node_job_trains_like_a_local_two_process_run(uninterrupted):
    out, job_id = uninterrupted["slurm"], uninterrupted["job_id"]
    assert job_field(job_id, "NodeList") == "node[1-2]"
    ports = set()
    for rank in (0, 1):  # ranks, master address and port mapped from SLURM (submitit's rule)
        log = (out / "slurm" / job_id / f"{job_id}_{rank}_log.err").read_text()
        line = re.search(
            rf"\[scm-submit rank {rank}/2 job {job_id}\] training into (\S+) \(master node1:(\d+)\)", log
        )
        assert line and line.group(1) == str(out), log[-3000:]
        ports.add(int(line.group(2)))
    assert len(ports) == 1 and 20000 <= ports.pop() <= 60000
    assert_same_weights(final_state(out), final_state(uninterrupted["local"]))
    slurm, local = (
        json.loads((uninterrupted[k] / "eval/results.json").read_text()) for k in ("slurm", "local")
    )
    assert slurm["world_size"] == local["world_size"] == 2
    assert slurm["protocols"]["wsol"]  # evaluated after training, in the same job
    for key in ("checkpoint", "config"):  # they name their own output directories
        assert slurm.pop(key) != local.pop(key)
    assert slurm == local


def test_usr2_mid_training_checkpoints_requeues_and_ends_with_the_same_weights(
    shards, uninterrupted, tmp_path
):
    out = tmp_path / "run"
    (job,) = submit(plan_configs(engine_cfg(shards, out), None, None), CPU_2_NODES)
    deadline = time.monotonic() + 120
    while logged_steps(out) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
    wait_for(job.job_id, {"COMPLETED"}, tmp_path, timeout_s=240)
    assert job_field(job.job_id, "Restarts") == "1"
    log = (out / "slurm" / job.job_id / f"{job.job_id}_0_log.err").read_text()
    assert "caught SIGUSR2" in log and "job requeued" in log
    resumed = re.search(r"resumed from \S+ at step (\d+)", log)
    assert resumed and 5 <= int(resumed.group(1)) < 48, log[-3000:]  # stopped mid-training
    assert_same_weights(final_state(out), final_state(uninterrupted["slurm"]))


def test_cli_eval_after_runs_a_dependent_evaluation_with_its_own_resources(
    shards, uninterrupted, tmp_path, capsys
):
    out = tmp_path / "run"
    rc = scm_submit(
        [
            "--config",
            "configs/experiments/synthetic_scm.yaml",
            "--nodes",
            "2",
            "--tasks-per-node",
            "1",
            "--time",
            "10",
            "--eval-after",
            "--eval-nodes",
            "1",
            "--eval-tasks-per-node",
            "1",
            *engine_overrides(shards, out, evaluate=True),
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    train_id, eval_id = re.findall(r"submitted (?:train|eval) job (\d+)", printed)
    assert f"stdout {out}/slurm/{train_id}/{train_id}_0_log.out" in printed
    assert job_field(eval_id, "Dependency") in {f"afterok:{train_id}(unfulfilled)", "(null)"}
    wait_for(eval_id, {"COMPLETED"}, tmp_path, timeout_s=240)
    assert job_field(eval_id, "StartTime") >= job_field(train_id, "EndTime")
    assert (job_field(train_id, "NumNodes"), job_field(eval_id, "NumNodes")) == ("2", "1")
    train_log = (out / "slurm" / train_id / f"{train_id}_0_log.err").read_text()
    assert "results:" not in train_log  # training did not evaluate as well
    assert_same_weights(final_state(out), final_state(uninterrupted["slurm"]))
    mine, reference = (
        json.loads((d / "eval/results.json").read_text()) for d in (out, uninterrupted["slurm"])
    )
    assert (mine["world_size"], reference["world_size"]) == (1, 2)
    for key in ("checkpoint", "config", "world_size"):
        mine.pop(key), reference.pop(key)
    assert mine == reference  # exact evaluation: one process agrees with two


def test_killed_job_resumes_from_its_last_periodic_checkpoint(tmp_path):
    out = tmp_path / "run"
    cfg = toy_cfg(out, 60)
    (job,) = submit_toy(plan_configs(cfg, None, None))
    wait_progress(out, 10)
    for rank in (0, 1):  # SIGKILL the training processes: no warning, no handler runs
        (line,) = (out / f"starts_rank{rank}.txt").read_text().splitlines()
        os.kill(int(line.split()[6]), signal.SIGKILL)
    wait_for(job.job_id, {"FAILED"}, tmp_path)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True)
    wait_for(job.job_id, {"COMPLETED"}, tmp_path, timeout_s=150)
    first, second = starts(out)
    assert int(second[0]) % 4 == 0 and 8 <= int(second[0]) < 60  # a periodic checkpoint
    assert json.loads((out / "results.json").read_text())["weights"] == toy_engine.reference_weights(cfg, 2)


def test_scontrol_requeue_checkpoints_on_sigterm_and_slurm_restarts_the_job(tmp_path):
    out = tmp_path / "run"
    cfg = toy_cfg(out, 60, "train.checkpoint_every=1000")  # only the stop writes one
    (job,) = submit_toy(plan_configs(cfg, None, None))
    wait_progress(out, 10)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True)
    wait_for(job.job_id, {"COMPLETED"}, tmp_path, timeout_s=150)
    assert job_field(job.job_id, "Restarts") == "1"
    first, second = starts(out)
    assert 10 <= int(second[0]) < 60 and second[1] == "1"  # resumed where SIGTERM stopped it
    log = (out / "slurm" / job.job_id / f"{job.job_id}_0_log.err").read_text()
    assert "exiting (signals: ['SIGTERM'])" in log and "job requeued" not in log
    assert json.loads((out / "results.json").read_text())["weights"] == toy_engine.reference_weights(cfg, 2)


def test_array_job_writes_one_result_dir_per_sweep_value(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("optim.lr: [0.05, 0.2]\n")
    base = toy_cfg(tmp_path / "sweep", 8)
    configs = plan_configs(base, load_sweep(sweep), lambda extra: toy_cfg(tmp_path / "sweep", 8, *extra))
    jobs = submit_toy(configs, Resources(nodes=1, tasks_per_node=1, time_min=10))
    assert [j.job_id.split("_")[1] for j in jobs] == ["0", "1"]
    for job in jobs:
        wait_for(job.job_id, {"COMPLETED"}, tmp_path)
    dirs = sorted(p.parent for p in (tmp_path / "sweep").glob("*/results.json"))
    assert [d.name for d in dirs] == ["0_lr=0.05", "1_lr=0.2"]
    for d, cfg in zip(dirs, configs):
        assert cfg.optim.lr in (0.05, 0.2)
        assert json.loads((d / "results.json").read_text())["weights"] == toy_engine.reference_weights(cfg, 1)


def test_unknown_partition_shows_slurms_message(tmp_path, capsys):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"train:\n  output_dir: {tmp_path / 'run'}\n")
    rc = scm_submit(["--config", str(cfg_file), "--partition", "nosuchpart"])
    assert rc == 2
    assert "invalid partition" in capsys.readouterr().err.lower()


def test_a_crashing_rank_ends_the_job_and_cancels_its_evaluation(tmp_path):
    cfg = toy_cfg(tmp_path / "run", 8)
    train_job, eval_job = submit(
        plan_configs(cfg, None, None),
        CPU_2_NODES,
        eval_res=Resources(nodes=1, tasks_per_node=1, time_min=5),
        train_fn=toy_engine.train_failing_on_rank1,
    )
    wait_for(train_job.job_id, {"FAILED"}, tmp_path, timeout_s=60)  # rank 0 is not left hanging
    assert (
        "rank 1 crashed"
        in (tmp_path / "run/slurm" / train_job.job_id / f"{train_job.job_id}_1_log.err").read_text()
    )
    wait_for(eval_job.job_id, {"CANCELLED"}, tmp_path, timeout_s=30)
