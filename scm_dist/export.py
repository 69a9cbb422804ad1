"""Encoder-only inference weights: a checkpoint with no SCM parameter.

    scm-export --checkpoint runs/x/model_final.pt --out deit_scm_small_cub_infer.pt

Eval mode never runs SCM, so the exported file gives identical eval outputs; load it
with ``timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=OUT),
num_classes=K)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .files import read_state_dict, save_atomic

SCM_PREFIXES = ("scm.", "layers.")  # ours, and the release's SCM scalars


def encoder_only(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop every SCM parameter (ours and the release's), keep encoder and head."""
    return {k: v for k, v in state_dict.items() if not k.startswith(SCM_PREFIXES)}


def export_encoder(checkpoint: str | Path, out: str | Path) -> dict[str, int]:
    """Write the encoder-only weights of ``checkpoint`` to ``out``; return key counts."""
    state_dict = read_state_dict(checkpoint)
    encoder = {k: v.float().contiguous() for k, v in encoder_only(state_dict).items()}
    save_atomic({"state_dict": encoder, "format": "scm_dist-encoder-only"}, out)
    return {"kept": len(encoder), "dropped_scm": len(state_dict) - len(encoder)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scm-export", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (.pt/.pth)")
    parser.add_argument("--out", required=True, help="where to write the inference weights")
    args = parser.parse_args(argv)
    try:
        counts = export_encoder(args.checkpoint, args.out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"scm-export: error: {err}")
    print(f"wrote {args.out}: {counts['kept']} tensors, dropped {counts['dropped_scm']} SCM parameters")


if __name__ == "__main__":
    main()
