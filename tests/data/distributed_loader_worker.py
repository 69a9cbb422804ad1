"""One rank of the multi-process loader test: started with the launcher environment
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), joins a gloo group, reads its share and
gathers what every rank saw; rank 0 writes it as JSON.

    python distributed_loader_worker.py EVAL_DIR TRAIN_DIR OUT.json

WebDataset with 2 workers per rank, then FFCV (quasi-random order).
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from loader_fixtures import small_config  # noqa: E402

from scm_dist.data import build_eval_loader, build_train_loader  # noqa: E402


def _read(eval_dir: str, train_dir: str, fmt: str, rank: int, world: int) -> dict:
    workers = 2 if fmt == "webdataset" else 1
    eval_keys = [
        key
        for batch in build_eval_loader(
            small_config(eval_dir, fmt, workers=workers), rank=rank, world_size=world
        )
        for key in batch.keys
    ]
    train = build_train_loader(
        small_config(train_dir, fmt, workers=workers, ffcv_order="quasi_random"),
        rank=rank,
        world_size=world,
        seed=7,
    )
    epochs = []
    for epoch in range(2):
        train.set_epoch(epoch)
        epochs.append([list(train.last_ids) for _ in train])
    return {"eval_keys": eval_keys, "steps": train.steps_per_epoch, "epochs": epochs}


def main(eval_dir: str, train_dir: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = {fmt: _read(eval_dir, train_dir, fmt, rank, world) for fmt in ("webdataset", "ffcv")}
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        Path(out).write_text(json.dumps(gathered))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
