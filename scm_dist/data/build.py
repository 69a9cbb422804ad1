"""One entry point per loader: the format comes from the config or the manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from data_shards.schema import FORMAT_FFCV, FORMAT_WEBDATASET
from scm_dist.config import DataConfig

from .base import TrainLoader
from .folder_loader import FolderTrainLoader
from .shards import resolve_format
from .webdataset_loader import WebDatasetEvalLoader, WebDatasetTrainLoader

if TYPE_CHECKING:
    from .ffcv_loader import FFCVEvalLoader

EvalLoader = Union[WebDatasetEvalLoader, "FFCVEvalLoader"]


def _loader_class(fmt: str, kind: str) -> type:
    """The loader class of a format; FFCV (numba, seconds to import) only when used."""
    if fmt == FORMAT_FFCV:
        from . import ffcv_loader

        return {"train": ffcv_loader.FFCVTrainLoader, "eval": ffcv_loader.FFCVEvalLoader}[kind]
    if fmt == FORMAT_WEBDATASET:
        return {"train": WebDatasetTrainLoader, "eval": WebDatasetEvalLoader}[kind]
    if kind == "train":
        return FolderTrainLoader
    raise ValueError(
        "an image folder has no boxes to evaluate against; convert it with "
        "data_shards (with a boxes CSV) and point data.val_dir at the converted split"
    )


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} does not exist in a world of {world_size} process(es)")


def build_train_loader(cfg: DataConfig, rank: int = 0, world_size: int = 1, seed: int = 0) -> TrainLoader:
    """This rank's train loader over ``cfg.train_dir``."""
    _check_rank(rank, world_size)
    fmt = resolve_format(cfg.train_dir, cfg.format)
    if cfg.decode == "gpu" and fmt != FORMAT_WEBDATASET:
        raise ValueError(
            f"data.decode=gpu decodes WebDataset shards only, {cfg.train_dir} is {fmt}: "
            "set data.decode=cpu or convert the split to WebDataset"
        )
    return _loader_class(fmt, "train")(cfg, cfg.train_dir, rank, world_size, seed)


def build_eval_loader(cfg: DataConfig, rank: int = 0, world_size: int = 1) -> EvalLoader:
    """This rank's exact-once share of ``cfg.val_dir`` as :class:`EvalBatch` es."""
    _check_rank(rank, world_size)
    return _loader_class(resolve_format(cfg.val_dir, cfg.format), "eval")(cfg, cfg.val_dir, rank, world_size)
