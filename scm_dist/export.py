"""Encoder-only inference weights: a checkpoint with no SCM parameter.

    scm-export --checkpoint runs/x/model_final.pt --out deit_scm_small_cub_infer.pt

Eval mode never runs SCM, so the exported file gives identical eval outputs; load it
with ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=OUT),
num_classes=K)``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from .files import read_state_dict, save_atomic

SCM_PREFIXES = ("scm.", "layers.")  # ours, and the release's SCM scalars


def encoder_only(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop every SCM parameter (the release's are renamed to ours on reading), keep encoder and head."""
    return {k: v for k, v in state_dict.items() if not k.startswith("scm.")}


def export_encoder(checkpoint: str | Path, out: str | Path) -> dict[str, int]:
    """Write the encoder-only weights of ``checkpoint`` to ``out``; return key counts."""
    state_dict = read_state_dict(checkpoint)
    encoder = {k: v.float().contiguous() for k, v in encoder_only(state_dict).items()}
    save_atomic({"state_dict": encoder, "format": "scm_dist-encoder-only"}, out)
    return {"kept": len(encoder), "dropped_scm": len(state_dict) - len(encoder)}


def _check_out(checkpoint: Path, out: Path) -> None:
    """Refuse an --out that is the input itself, a folder, or lies under a file."""
    if out.exists() and checkpoint.exists() and os.path.samefile(out, checkpoint):
        raise ValueError(f"--out {out} is the input checkpoint; write the export to another file")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name, e.g. {out / 'encoder.pt'}")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ValueError(f"--out {out}: {parent} is a file, not a folder; choose another --out")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scm-export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (.pt/.pth)")
    parser.add_argument("--out", required=True, help="where to write the inference weights")
    args = parser.parse_args(argv)
    try:
        _check_out(Path(args.checkpoint), Path(args.out))
        counts = export_encoder(args.checkpoint, args.out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"scm-export: error: {err}")
    print(f"wrote {args.out}: {counts['kept']} tensors, dropped {counts['dropped_scm']} SCM parameters")


if __name__ == "__main__":
    main()
