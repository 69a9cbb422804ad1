"""``bench loaders`` end to end on a few images: every loader, local and remote (nginx, S3),
delivers the same images, and the reported ratios are those of its own timings."""

import pytest

from scm_dist.data.benchmark import run


@pytest.mark.slow
def test_loader_benchmark_runs_remote_beside_local(tmp_path):
    result = run(
        ["--images", "40", "--workers", "1", "--batch-size", "8", "--size", "64", "--workdir", str(tmp_path)]
    )
    runs = result["runs"]
    assert set(runs) == {"folder", "webdataset", "ffcv", "webdataset_http_nginx", "webdataset_s3_moto"}
    assert {r["images"] for r in runs.values()} == {2 * (40 // 8) * 8}
    local = runs["webdataset"]["images_per_s"]
    for name, ratio in result["remote_ratio_to_local_webdataset"].items():
        assert ratio == pytest.approx(runs[name]["images_per_s"] / local, abs=0.006)
