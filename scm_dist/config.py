"""The one experiment config: dataclasses, loaded from YAML, overridden by dotted keys.

    cfg = load_config("configs/experiments/synthetic_scm.yaml", ["optim.lr=1e-4"])

Every CLI reads this object, before any process group, loader or model exists. Unknown
keys are errors that list the close valid keys; a key with a fixed set of values is typed
``Literal[...]`` and a value outside it is an error naming the key, the value and the
choices. A YAML file may start from another one: ``base: other.yaml`` (a path relative
to the file) is read first and the file's own keys are laid over it, section by section.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .files import write_text_atomic

# the registered model family (scm_dist.models.MODEL_NAMES; a test keeps the two equal)
ModelName = Literal[
    "deit_tscam_tiny_patch16_224",
    "deit_tscam_small_patch16_224",
    "deit_tscam_base_patch16_224",
    "deit_scm_tiny_patch16_224",
    "deit_scm_small_patch16_224",
    "deit_scm_base_patch16_224",
]
Protocol = Literal["wsol", "scm-release"]  # scm_dist.evaluation.PROTOCOLS


@dataclass
class ModelConfig:
    """Which network and how it starts."""

    name: ModelName = "deit_scm_small_patch16_224"
    num_classes: int = 0  # 0: take it from the train shards' manifest
    img_size: int = 224
    drop_path_rate: float = 0.1
    depth: int = 0  # >0: override the number of blocks (small demo models)
    pretrained: str = ""  # local checkpoint file (DeiT, release or own); "" = random
    attn_impl: Literal["fused", "naive"] = "fused"  # fused | naive (materialised attention, reference)
    scm_impl: Literal["fast", "literal"] = "fast"  # fast | literal (docs/MODEL.md step by step, reference)
    # SCM's N x N Newton-Schulz products on CUDA (tf32_emulated: TF32 rounding on any device)
    scm_precision: Literal["fp32", "tf32", "tf32_emulated"] = "fp32"
    resample_pos_embed: bool = False  # scm-eval: resample a checkpoint's pos_embed to the eval grid


@dataclass
class DataConfig:
    """Where the shards are and how they are streamed and transformed."""

    train_dir: str = ""  # shard directory with manifest.json (or an image folder)
    val_dir: str = ""
    format: Literal["auto", "webdataset", "ffcv", "folder"] = (
        "auto"  # auto (from the manifest) | webdataset | ffcv | folder
    )
    resize_size: int = 256  # train: resize to resize_size x resize_size ...
    crop_size: int = 224  # ... then random crop crop_size, horizontal flip
    eval_size: int = 224  # eval: resize to eval_size x eval_size
    batch_size: int = 64  # micro batch per process
    eval_batch_size: int = 64
    workers: int = 4  # loader worker processes per rank
    shuffle_buffer: int = 2000  # webdataset sample shuffle buffer
    resampled: bool = False  # webdataset: sample shards with replacement ...
    samples_per_epoch: int = 0  # ... with this many samples per epoch (0: manifest count)
    ffcv_order: Literal["random", "quasi_random"] = "random"  # random | quasi_random
    ffcv_os_cache: bool = True  # FFCV: use the page cache (else process-local memory)
    skip_corrupt: bool = False  # train: skip undecodable samples with a warning + count
    decode: Literal["cpu", "gpu"] = "cpu"  # webdataset train JPEGs: cpu (workers) | gpu (nvJPEG, batched)
    # train_dir / val_dir may also be URLs (http(s)://host/prefix/train, s3://bucket/prefix/train)
    cache_dir: str = ""  # URL data: keep verified shards here, later epochs read them from disk
    remote_retries: int = 5  # URL data: retries of a failed read (reset, 5xx) in a row ...
    remote_backoff_s: float = 1.0  # ... after a wait doubling from this (capped at 30 s)


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    lr: float = 5e-5  # base LR at base_batch_size
    lr_scaling: Literal["linear", "none"] = "linear"  # linear: lr * global_batch / base_batch_size | none
    base_batch_size: int = 256
    weight_decay: float = 0.05  # not applied to norms, biases, pos_embed, cls_token
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    schedule: Literal["step", "cosine"] = "step"  # step | cosine
    decay_epochs: list[int] = field(default_factory=list)  # step: multiply by decay_rate at these
    decay_rate: float = 0.1
    warmup_epochs: float = 0.0  # linear warmup (both schedules)
    min_lr: float = 0.0  # cosine floor, absolute (timm lr_min): not scaled with the batch
    grad_clip: float = 0.0  # max global grad norm; 0 disables
    label_smoothing: float = 0.0


@dataclass
class TrainConfig:
    """The engine, precision, length, checkpoints and logging."""

    engine: Literal["accelerate", "deepspeed"] = "accelerate"
    sharding: Literal["ddp", "fsdp"] = "ddp"  # accelerate only
    deepspeed_config: str = "configs/deepspeed/zero2.json"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # fp16: GPU only, loss scaling
    epochs: int = 30
    max_steps: int = 0  # >0: stop after this many optimizer steps
    grad_accum: int = 1
    global_batch_size: int = 0  # >0: grad_accum = this / (batch_size x world size), must divide
    checkpoint_every: int = 500  # optimizer steps; a checkpoint is also written at the end
    keep_last: int = 3
    log_every: int = 20
    output_dir: str = "runs/default"
    resume: str = "auto"  # auto (latest in output_dir) | none | a checkpoint path
    overwrite: bool = False  # with resume=none: delete output_dir's checkpoints and start over
    expected_world_size: int = 0  # >0: refuse to start with another world size
    grad_checkpointing: bool = False  # recompute each encoder block in backward: less memory, more compute
    compile: bool = False  # torch.compile the model


@dataclass
class EvalConfig:
    """Distributed WSOL evaluation (see docs/EVALUATION.md)."""

    after_train: bool = False
    protocols: list[Protocol] = field(default_factory=lambda: ["wsol", "scm-release"])  # reported
    iou_thresholds: list[int] = field(default_factory=lambda: [30, 50, 70])
    cam_curve_interval: float = 0.01
    top_k: int = 5
    num_pictures: int = 8
    output_dir: str = ""  # "" = <train.output_dir>/eval


@dataclass
class ExperimentConfig:
    """Everything a run needs."""

    name: str = "experiment"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


class ConfigError(ValueError):
    """A config file or override is wrong; the message says what to change."""


def _valid_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            keys += _valid_keys(hint, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _unknown_key(key: str) -> ConfigError:
    valid = _valid_keys(ExperimentConfig)
    valid += sorted({k.split(".")[0] for k in valid})  # section names too
    close = difflib.get_close_matches(key, valid, n=4, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}.{hint}")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} is not one of the choices: {', '.join(map(str, choices))}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            value = [value]
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, key) for v in value]
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is float and not isinstance(value, bool):
        try:  # YAML reads "1e-4" (no dot) as a string
            return float(value)
        except (TypeError, ValueError):
            pass
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is str and value is not None:
        return str(value)
    raise ConfigError(f"{key} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in names:
            raise _unknown_key(key)
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} is a section; give it as a mapping of keys")
            _apply(getattr(obj, name), value, f"{key}.")
        else:
            setattr(obj, name, _coerce(value, hint, key))


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["optim.lr=1e-4", "train.epochs=3"]`` into a nested dict."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _unknown_key(key)
        node[parts[-1]] = value
    return nested


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``: sections merge key by key, everything else is replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file as a nested dict, its ``base:`` files (if any) merged under it."""
    path = Path(path)
    if not path.is_file():
        named_by = f" (the base: of {_chain[-1]})" if _chain else " (see configs/experiments/)"
        raise ConfigError(f"config file not found: {path}{named_by}")
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: base: files form a loop ({' -> '.join(map(str, (*_chain, path)))})")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    base = loaded.pop("base", None)
    if base is None:
        return loaded
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base: must name one YAML file, got {base!r}")
    return _merge(read_yaml(path.parent / base, (*_chain, path.resolve())), loaded)


def _check(cfg: ExperimentConfig) -> None:
    """Rules that span one key's value (types and choices are checked as keys are set)."""
    if not cfg.eval.protocols:
        raise ConfigError("eval.protocols is empty: name at least one of wsol, scm-release")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Defaults, then the YAML file (after its ``base:`` files), then the dotted overrides."""
    cfg = ExperimentConfig()
    if path is not None:
        _apply(cfg, read_yaml(path))
    _apply(cfg, parse_overrides(overrides or []))
    _check(cfg)
    return cfg


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Plain nested dict (for results JSON and checkpoints)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
