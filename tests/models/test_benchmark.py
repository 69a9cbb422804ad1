"""`bench model` on a tiny size: three paths side by side, and the naive one keeps more."""

from scm_dist.models.benchmark import PATHS, run


def test_model_benchmark_reports_every_path_and_the_attention_memory_saving():
    result = run(
        ["--model", "deit_scm_tiny_patch16_224", "--batch", "1", "--img-size", "224", "--steps", "1"]
    )
    cpu = result["cpu"]
    assert set(PATHS) <= set(cpu)
    for path in PATHS:
        assert cpu[path]["images_per_s"] > 0
    # the naive path keeps the [B, heads, N+1, N+1] maps: the efficient one must not
    assert cpu["naive"]["attention_memory_mb"] > 1.5 * cpu["efficient"]["attention_memory_mb"]
    assert cpu["speedup"] > 0 and cpu["attention_speedup"] > 0
