"""DeepSpeed ZeRO-2 / ZeRO-3 in bf16 on 2 CPU processes (gloo); consolidation and export."""

import timm
import torch
from dist import run_ranks

import scm_dist  # noqa: F401
from scm_dist.export import export_encoder


def _ds_job(shards, output_dir, stage, kind="train"):
    return dict(
        kind=kind,
        shards=str(shards),
        output_dir=str(output_dir),
        overrides=[
            "train.engine=deepspeed",
            "train.precision=bf16",
            f"train.deepspeed_config=configs/deepspeed/zero{stage}.json",
            "train.max_steps=6",
            "train.log_every=3",
        ],
    )


def test_zero2_bf16_trains(synthetic_shards, tmp_path):
    out = tmp_path / "zero2"
    summaries = run_ranks(_ds_job(synthetic_shards, out, 2), 2)
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    assert (out / "checkpoints/step_00000006/zero").is_dir()
    state = torch.load(out / "model_final.pt", weights_only=False)["state_dict"]
    assert all(v.dtype == torch.float32 for v in state.values())
    assert "scm.layers.3.t" in state


def test_zero3_partitions_scm_and_consolidated_export_matches_live_model(synthetic_shards, tmp_path):
    out = tmp_path / "zero3"
    summaries = run_ranks(_ds_job(synthetic_shards, out, 3, kind="train_snapshot"), 2)
    assert summaries[0]["status"] == "completed"
    # ZeRO-3 wrote per-rank partitions of the model states, SCM scalars included
    shards = sorted((out / "checkpoints/step_00000006/zero").glob("*model_states.pt"))
    assert len(shards) == 2

    full = torch.load(out / "model_final.pt", weights_only=False)["state_dict"]
    assert full["scm.layers.0.lam"].shape == (1,)
    assert full["blocks.0.attn.qkv.weight"].shape == (576, 192)

    live = torch.load(out / "live_outputs.pt", weights_only=False)
    assert live["dtype"] == "torch.bfloat16"
    # the consolidated fp32 master weights are exactly what the live bf16 module holds
    assert live["params"].keys() == full.keys()
    for name, value in live["params"].items():
        assert torch.equal(full[name].to(torch.bfloat16), value), name

    export_encoder(out / "model_final.pt", tmp_path / "infer.pt")
    model = timm.create_model(
        "deit_scm_tiny_patch16_224",
        pretrained=True,
        num_classes=10,
        img_size=64,
        depth=3,
        pretrained_cfg_overlay=dict(file=str(tmp_path / "infer.pt")),
    )
    model = model.to(torch.bfloat16).eval()  # the live DeepSpeed module computes in bf16
    with torch.no_grad():
        out_exported = model(live["images"].to(torch.bfloat16))
    # same weights, same dtype; ZeRO-3 runs linears through its own autograd function
    # (matmul, then bias), so bf16 rounding differs: equal up to bf16 noise
    scale = live["cams"].abs().max().item()
    torch.testing.assert_close(out_exported.cams.float(), live["cams"], rtol=0, atol=0.1 * scale)


def test_deepspeed_steps_our_adamw_with_the_same_update_as_accelerate(synthetic_shards, tmp_path):
    """ZeRO-2 fp32 on one process against the Accelerate backend: the same torch AdamW
    (foreach on CPU, fused on CUDA), grouped weight decay and clipping, the same weights."""
    common = ["train.max_steps=4", "train.log_every=2", "model.drop_path_rate=0", "optim.grad_clip=0.5"]
    runs = {}
    for engine, extra in (
        ("deepspeed", ["train.engine=deepspeed", "train.deepspeed_config=configs/deepspeed/zero2.json"]),
        ("accelerate", []),
    ):
        job = dict(kind="train_optimizer", shards=str(synthetic_shards), output_dir=str(tmp_path / engine))
        job["overrides"] = common + extra
        [summary] = run_ranks(job, 1)
        assert summary["optimizer"] == {"class": "AdamW", "foreach": True, "fused": None}
        runs[engine] = torch.load(tmp_path / engine / "model_final.pt", weights_only=True)["state_dict"]
    # float32 summation order (ZeRO's flat gradient buffers) moves near-zero-gradient
    # biases by up to ~1.5e-6, a few percent of one AdamW step (lr <= 6.25e-5 here)
    for name, value in runs["accelerate"].items():
        torch.testing.assert_close(runs["deepspeed"][name], value, rtol=1e-4, atol=3e-6, msg=name)
    # the weights did move: each SCM scalar took four AdamW steps
    for name, before in summary["scalars_before"].items():
        assert abs(runs["accelerate"][name].item() - before) > 1e-5, name
