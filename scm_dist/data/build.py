"""One entry point per loader: the format comes from the config or the manifest."""
from __future__ import annotations

from typing import Union

from data_shards.schema import FORMAT_FFCV, FORMAT_WEBDATASET
from scm_dist.config import DataConfig

from .base import TrainLoader
from .ffcv_loader import FFCVEvalLoader, FFCVTrainLoader
from .folder_loader import FolderTrainLoader
from .shards import FORMAT_FOLDER, resolve_format
from .webdataset_loader import WebDatasetEvalLoader, WebDatasetTrainLoader

EvalLoader = Union[WebDatasetEvalLoader, FFCVEvalLoader]
_TRAIN = {FORMAT_WEBDATASET: WebDatasetTrainLoader, FORMAT_FFCV: FFCVTrainLoader,
          FORMAT_FOLDER: FolderTrainLoader}
_EVAL = {FORMAT_WEBDATASET: WebDatasetEvalLoader, FORMAT_FFCV: FFCVEvalLoader}


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} does not exist in a world of {world_size} process(es)")


def build_train_loader(cfg: DataConfig, rank: int = 0, world_size: int = 1, seed: int = 0
                       ) -> TrainLoader:
    """This rank's train loader over ``cfg.train_dir``."""
    _check_rank(rank, world_size)
    fmt = resolve_format(cfg.train_dir, cfg.format)
    return _TRAIN[fmt](cfg, cfg.train_dir, rank, world_size, seed)


def build_eval_loader(cfg: DataConfig, rank: int = 0, world_size: int = 1) -> EvalLoader:
    """This rank's exact-once share of ``cfg.val_dir`` as :class:`EvalBatch` es."""
    _check_rank(rank, world_size)
    fmt = resolve_format(cfg.val_dir, cfg.format)
    if fmt not in _EVAL:
        raise ValueError(f"{cfg.val_dir}: an image folder has no boxes to evaluate against; "
                         "convert it with data_shards (with a boxes CSV) and point "
                         "data.val_dir at the converted split")
    return _EVAL[fmt](cfg, cfg.val_dir, rank, world_size)
