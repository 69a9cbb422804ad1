"""scm-submit without a cluster: sweeps, resources, the dry-run script, bad input."""

from __future__ import annotations

import os
import signal

import pytest

from launch.cli import main as scm_submit
from launch.distributed_env import export_from_slurm
from launch.preemption import SignalWatch
from launch.slurm import Resources, SubmitError, plan_configs
from launch.sweep import load_sweep
from scm_dist.config import ConfigError, load_config
from scm_dist.stop import StopFlag


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(f"name: tiny\ntrain:\n  output_dir: {tmp_path / 'runs/tiny'}\n")
    return path


def test_grid_sweep_is_every_combination_with_distinct_tags(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("optim.lr: [1.0e-4, 3.0e-4]\nseed: [0, 1]\n")
    points = load_sweep(path)
    assert [p.values for p in points] == [
        {"optim.lr": 1e-4, "seed": 0},
        {"optim.lr": 1e-4, "seed": 1},
        {"optim.lr": 3e-4, "seed": 0},
        {"optim.lr": 3e-4, "seed": 1},
    ]
    assert [p.tag for p in points] == [
        "0_lr=0.0001_seed=0",
        "1_lr=0.0001_seed=1",
        "2_lr=0.0003_seed=0",
        "3_lr=0.0003_seed=1",
    ]


def test_list_sweep_gives_one_config_per_entry_in_its_own_dir(tmp_path, cfg_file):
    path = tmp_path / "s.yaml"
    path.write_text("- {optim.lr: 0.5, train.epochs: 2}\n- {optim.lr: 0.25}\n")
    base = load_config(cfg_file, ["optim.lr=9"])
    configs = plan_configs(
        base, load_sweep(path), lambda extra: load_config(cfg_file, ["optim.lr=9", *extra])
    )
    assert [c.optim.lr for c in configs] == [0.5, 0.25]
    assert [c.train.epochs for c in configs] == [2, 30]
    root = tmp_path / "runs/tiny"
    assert [c.train.output_dir for c in configs] == [str(root / "0_lr=0.5_epochs=2"), str(root / "1_lr=0.25")]


@pytest.mark.parametrize("text", ["[]", "3", "- 1\n- 2\n", "optim.lr: []\n"])
def test_malformed_sweeps_say_which_forms_exist(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="sweep|at least one value"):
        load_sweep(path)


def test_sweep_with_an_unknown_key_fails_before_submitting(tmp_path, cfg_file, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("optim.lrr: [1, 2]\n")
    rc = scm_submit(["--config", str(cfg_file), "--array", str(sweep), "--dry-run"])
    assert rc == 2
    assert "optim.lr" in capsys.readouterr().err  # the close valid key is suggested


def test_one_task_per_gpu_unless_tasks_per_node_given():
    assert Resources(nodes=2, gpus_per_node=8).sbatch_parameters("x")["ntasks_per_node"] == 8
    assert Resources(nodes=2).sbatch_parameters("x")["ntasks_per_node"] == 1
    params = Resources(nodes=3, tasks_per_node=4, partition="cpu", exclusive=True).sbatch_parameters(
        "x", "afterok:12"
    )
    assert params == dict(
        job_name="x",
        nodes=3,
        time=60,
        ntasks_per_node=4,
        signal_delay_s=120,
        srun_args=["--kill-on-bad-exit=1"],
        partition="cpu",
        exclusive=True,
        dependency="afterok:12",
        additional_parameters={"kill-on-invalid-dep": "yes"},
    )
    with pytest.raises(SubmitError, match="at least 1"):
        Resources(nodes=0).sbatch_parameters("x")
    with pytest.raises(SubmitError, match="signal"):  # USR2 could come before start-up ends
        Resources(time_min=2, signal_delay_s=60).sbatch_parameters("x")
    assert Resources(time_min=4, signal_delay_s=60).sbatch_parameters("x")["time"] == 4


def test_dry_run_prints_the_batch_script_and_submits_nothing(tmp_path, cfg_file, capsys):
    rc = scm_submit(
        [
            "--config",
            str(cfg_file),
            "--nodes",
            "2",
            "--gpus-per-node",
            "4",
            "--partition",
            "gpu",
            "--account",
            "proj",
            "--qos",
            "high",
            "--time",
            "90",
            "--constraint",
            "a100",
            "--mem",
            "64G",
            "--cpus-per-task",
            "6",
            "--exclusive",
            "--dry-run",
            "--eval-after",
            "--eval-gpus-per-node",
            "1",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    train, evaluation = out.split("# evaluation batch script")
    for line in [
        "--nodes=2",
        "--gpus-per-node=4",
        "--ntasks-per-node=4",
        "--partition=gpu",
        "--account=proj",
        "--qos=high",
        "--time=90",
        "--constraint=a100",
        "--mem=64G",
        "--cpus-per-task=6",
        "#SBATCH --exclusive",
        "--signal=USR2@120",
        "--job-name=tiny",
    ]:
        assert line in train
    assert "srun --unbuffered" in train and "submitit.core._submit" in train
    assert "--nodes=1" in evaluation and "--ntasks-per-node=1" in evaluation
    assert "afterok:" in evaluation and "--kill-on-invalid-dep=yes" in evaluation
    assert "--kill-on-bad-exit=1" in train
    assert not (tmp_path / "runs").exists()  # nothing written, nothing submitted


def test_no_slurm_on_the_machine_suggests_accelerate_launch(cfg_file, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    rc = scm_submit(["--config", str(cfg_file), "--nodes", "2"])
    assert rc == 2
    assert "accelerate launch" in capsys.readouterr().err


def _slurm_task(monkeypatch, job_id: str, procid: int, localid: int) -> None:
    """The variables srun sets for one task of a 2-node, 4-task job."""
    exported = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    for key in (*exported, "CUDA_VISIBLE_DEVICES", "SLURM_ARRAY_JOB_ID"):
        monkeypatch.setenv(key, "")  # recorded, so that what the export sets is undone after
        monkeypatch.delenv(key)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    for key, value in dict(
        SLURM_JOB_ID=job_id,
        SLURM_NTASKS="4",
        SLURM_JOB_NUM_NODES="2",
        SLURM_NODEID=str(procid // 2),
        SLURM_PROCID=str(procid),
        SLURM_LOCALID=str(localid),
        SLURM_JOB_NODELIST="gpu[07-08]",
    ).items():
        monkeypatch.setenv(key, value)


def test_slurm_task_variables_become_the_torch_distributed_ones(monkeypatch):
    ports = {}
    for procid in range(4):
        _slurm_task(monkeypatch, "4242", procid, procid % 2)
        place = export_from_slurm()
        assert (place.rank, place.world_size, place.job_id, place.master_addr) == (procid, 4, "4242", "gpu07")
        assert {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")} == {
            "RANK": str(procid),
            "WORLD_SIZE": "4",
            "LOCAL_RANK": str(procid % 2),
            "LOCAL_WORLD_SIZE": "2",
        }
        assert os.environ["MASTER_ADDR"] == "gpu07" and "CUDA_VISIBLE_DEVICES" not in os.environ
        ports[procid] = int(os.environ["MASTER_PORT"])
    assert len(set(ports.values())) == 1 and 20000 <= ports[0] <= 60000  # one rendezvous per job
    _slurm_task(monkeypatch, "4243", 0, 0)
    assert export_from_slurm().master_port != ports[0]  # the next job meets elsewhere


def test_a_bad_choice_fails_before_submitting(cfg_file, capsys):
    rc = scm_submit(["--config", str(cfg_file), "--dry-run", "train.engine=torchrun"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "train.engine='torchrun' is not one of the choices: accelerate, deepspeed" in err


@pytest.mark.parametrize(
    "signals, requeue",
    [
        ([signal.SIGUSR2], True),
        ([signal.SIGUSR1], True),
        ([signal.SIGTERM], False),
        ([signal.SIGUSR2, signal.SIGTERM], False),
    ],
)
def test_signals_only_set_the_stop_flag(signals, requeue):
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)}
    try:
        stop = StopFlag()
        watch = SignalWatch(stop)
        assert not stop.is_set() and not watch.should_requeue
        for sig in signals:
            os.kill(os.getpid(), sig)
        assert stop.is_set()
        assert watch.should_requeue is requeue
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
