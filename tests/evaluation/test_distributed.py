"""1, 2 and 3 gloo ranks with uneven splits of 10 images give identical results JSON."""

import json
import os
import socket

import numpy as np
import pytest
import torch.multiprocessing as mp

from scm_dist.evaluation import BoxAccuracy, LocalizationEvaluator, all_reduce_counts
from scm_dist.runtime import Runtime

SPLITS = {1: [10], 2: [7, 3], 3: [2, 5, 3]}
SIZE = (32, 40)


def dataset():
    rng = np.random.default_rng(2024)
    logits = rng.normal(size=(10, 6)).astype(np.float32)
    cams = rng.normal(size=(10, 6, 4, 5)).astype(np.float32)
    labels = rng.integers(0, 6, 10)
    boxes = [np.array([[x, y, x + 12, y + 9]]) for x, y in rng.integers(0, 20, (10, 2))]
    return logits, cams, labels, boxes


def rank_main(rank, world, port, out_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK="0"
    )
    runtime = Runtime.start()  # the gloo group, from the variables a launcher sets
    try:
        logits, cams, labels, boxes = dataset()
        start = sum(SPLITS[world][:rank])
        part = slice(start, start + SPLITS[world][rank])
        evaluator = LocalizationEvaluator(image_size=SIZE)
        evaluator.update(logits[part], cams[part], labels[part], boxes[part])
        meter = BoxAccuracy()
        maps = np.clip(np.abs(cams[part, 0]) / 3, 0, 1).repeat(8, axis=1).repeat(8, axis=2)
        meter.update(maps, boxes[part])
        all_reduce_counts(evaluator, runtime)
        all_reduce_counts(meter, runtime)
        if rank == 0:
            with open(os.path.join(out_dir, f"world{world}.json"), "w") as handle:
                json.dump(
                    {"localization": evaluator.compute(), "box": meter.compute()}, handle, sort_keys=True
                )
    finally:
        runtime.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_one_two_and_three_ranks_give_identical_json(tmp_path):
    for world in SPLITS:
        # fork: the ranks start at once, with everything already imported
        mp.start_processes(
            rank_main, args=(world, free_port(), str(tmp_path)), nprocs=world, join=True, start_method="fork"
        )
    texts = {world: (tmp_path / f"world{world}.json").read_text() for world in SPLITS}
    assert texts[1] == texts[2] == texts[3]
    results = json.loads(texts[1])
    assert results["localization"]["num_images"] == 10 and results["box"]["num_images"] == 10
