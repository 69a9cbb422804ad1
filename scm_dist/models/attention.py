"""timm's ViT attention, extended to hand out the class-token attention row.

The attention CAM (docs/MODEL.md, "Attention CAM") needs, for every block, the softmax
attention of the class token towards the patches, averaged over the heads. Two
implementations with the same outputs and gradients:

* ``fused``: the block output comes from ``F.scaled_dot_product_attention`` and the
  class-token row is computed beside it as ``softmax(q_cls K^T * scale)``; no
  [B, heads, N+1, N+1] tensor exists.
* ``naive``: the full attention matrix is materialised (the way TS-CAM and the SCM
  release compute it); kept as the reference for tests and benchmarks.

timm's ``Block`` calls ``attn(x)`` and expects one tensor back, so the row travels beside
the output: while ``record_cls_attention`` is set, ``forward`` keeps it in
``cls_attention`` and the encoder takes it with :meth:`pop_cls_attention` right after the
block. When it is not set (timm's own ``forward_features`` / ``forward_intermediates``),
the fused path does not compute the row at all.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from timm.layers import Attention

AttentionImpl = Literal["fused", "naive"]
ATTENTION_IMPLS: tuple[str, ...] = ("fused", "naive")


class ClassTokenAttention(Attention):
    """timm ``Attention`` (parameter names ``qkv``, ``proj``) that also yields the
    head-averaged class-token attention; plugged into timm's ``Block`` as ``attn_layer``."""

    def __init__(self, dim: int, num_heads: int = 8, **kwargs: Any) -> None:
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        if kwargs.get("attn_drop", 0.0) or kwargs.get("gated", False):
            # the row computed beside the fused kernel would not see the dropped weights
            # or the gate; DeiT uses neither
            raise ValueError("ClassTokenAttention supports neither attention dropout nor gating")
        super().__init__(dim, num_heads=num_heads, **kwargs)
        self.impl = "fused"
        self.record_cls_attention = False
        self.cls_attention: torch.Tensor | None = None

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, value: str) -> None:
        if value not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {value!r}")
        self._impl = value

    def pop_cls_attention(self) -> torch.Tensor:
        """The attention recorded by the last forward; the fused path gives the class-token
        row towards the patches [B, T-1], the naive one the full head-averaged matrix
        [B, T, T] (the encoder sums the matrices, then takes the row)."""
        if self.cls_attention is None:
            raise RuntimeError("no class-token attention recorded: set record_cls_attention first")
        attention, self.cls_attention = self.cls_attention, None
        return attention

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False
    ) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("ClassTokenAttention is full self-attention: no attn_mask, no is_causal")
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self._impl == "fused":
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            if self.record_cls_attention:
                cls_logits = (q[:, :, :1] * self.scale) @ k.transpose(-2, -1)
                self.cls_attention = cls_logits.softmax(dim=-1).mean(dim=1)[:, 0, 1:]
        else:
            weights = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = weights @ v
            if self.record_cls_attention:
                self.cls_attention = weights.mean(dim=1)
        out = self.norm(out.transpose(1, 2).reshape(batch, tokens, self.attn_dim))
        return self.proj_drop(self.proj(out))
