"""`bench model` on a tiny size: every path side by side; its ratios are its own figures'
ratios, the naive path keeps more for backward, checkpointing keeps less."""

import pytest

from scm_dist.models.benchmark import PATHS, run


def test_model_benchmark_ratios_follow_from_its_own_figures():
    batch = 1
    result = run(
        ["--model", "deit_scm_tiny_patch16_224", "--batch", str(batch), "--img-size", "224", "--steps", "1"]
    )
    cpu = result["cpu"]
    assert set(PATHS) <= set(cpu)
    for path in PATHS:
        figures = cpu[path]
        assert figures["images_per_s"] == pytest.approx(batch / figures["step_s"], rel=0.01, abs=0.01), path

    def ratio(a, b, key):
        return pytest.approx(cpu[a][key] / cpu[b][key], rel=0.02, abs=0.01)

    assert cpu["speedup"] == ratio("efficient", "naive", "images_per_s")
    assert cpu["speedup_cpu_time"] == ratio("efficient", "naive", "images_per_cpu_s")
    assert cpu["attention_speedup"] == ratio("efficient", "naive_attention", "images_per_s")
    assert cpu["memory_ratio"] == ratio("naive", "efficient", "attention_memory_mb")
    assert cpu["checkpoint_speed_ratio"] == ratio("checkpointed", "efficient", "images_per_s")
    assert cpu["checkpoint_memory_ratio"] == ratio("efficient", "checkpointed", "activation_memory_mb")
    # byte counts, not timings: the naive path keeps the [B, heads, N+1, N+1] maps, the
    # checkpointed one only the block inputs
    assert cpu["memory_ratio"] > 1.5
    assert cpu["checkpoint_memory_ratio"] > 2
