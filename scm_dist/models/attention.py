"""Self-attention that also returns the class-token attention row.

Two implementations with the same outputs and gradients:

* ``fused``: the block output comes from ``F.scaled_dot_product_attention`` and the
  class-token row is computed directly as ``softmax(q_cls K^T * scale)``; no
  [B, heads, N+1, N+1] tensor exists.
* ``naive``: the full attention matrix is materialised (the way TS-CAM and the SCM
  release compute it); kept for tests and benchmarks.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttentionImpl = Literal["fused", "naive"]
ATTENTION_IMPLS: tuple[str, ...] = ("fused", "naive")


class ClassTokenAttention(nn.Module):
    """Multi-head self-attention (timm ViT parameter names: ``qkv``, ``proj``)."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, impl: AttentionImpl = "fused"
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.impl = impl

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {value!r}")
        self._impl = value

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the block output [B, T, D] and the class-token attention.

        The second value is the head-averaged class-token row towards the patches,
        [B, T-1], on the fused path; on the naive path it is the full head-averaged
        attention matrix [B, T, T] (the caller slices it).
        """
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self._impl == "fused":
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            cls_logits = (q[:, :, :1] * self.scale) @ k.transpose(-2, -1)
            attention = cls_logits.softmax(dim=-1).mean(dim=1)[:, 0, 1:]
        else:
            weights = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = weights @ v
            attention = weights.mean(dim=1)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out), attention
