"""Per-rank streaming loaders: WebDataset and FFCV shards (schema in data_shards.schema),
and an image-folder baseline.

    train = build_train_loader(cfg.data, rank=r, world_size=w, seed=s)
    for images, labels in train: ...
    for batch in build_eval_loader(cfg.data, rank=r, world_size=w): batch.boxes ...
"""

from .base import EvalBatch, TrainLoader
from .build import EvalLoader, build_eval_loader, build_train_loader
from .shards import ShardError

__all__ = ["EvalBatch", "EvalLoader", "ShardError", "TrainLoader", "build_eval_loader", "build_train_loader"]
