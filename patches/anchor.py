"""Anchor strength: scale how much every video token attends the anchor context frames.

The streaming sampler puts chunk 0's first latent in front of later chunks as context. A strength s
in (0, 1) multiplies the (unnormalised) attention weight of every anchor key by s, i.e. adds log(s)
to those logits (an additive attention mask); s = 1 leaves attention untouched. A Monarch patch below
reads the mask: the anchor frames leave its grid and are attended exactly with log(s) on their logits
(``patches/attention.py``, ``extra_bias``), so anchored calls keep Monarch's speed.
"""

from __future__ import annotations

import math

import torch

from .self_attention import BLOCK_MARK, mark_self_attention

ANCHOR_KEY = "rtv_anchor"


class AnchorContext:
    """Mutable per-run state: how many leading latent frames are anchor context, and their weight."""

    def __init__(self, strength: float = 1.0):
        self.frames = 0
        self.total_frames = 0
        self.strength = strength

    def __deepcopy__(self, memo):
        return self


def _anchor_bias(tokens: int, context: AnchorContext, like: torch.Tensor) -> torch.Tensor | None:
    if context.frames == 0 or context.total_frames == 0 or context.strength >= 1.0 or tokens % context.total_frames:
        return None
    per_frame = tokens // context.total_frames
    bias = torch.zeros(1, 1, 1, tokens, dtype=like.dtype, device=like.device)
    bias[..., : context.frames * per_frame] = math.log(max(context.strength, 1e-6))
    return bias


def apply_anchor_bias(model, context: AnchorContext):
    """Clone with an attention override that biases anchor keys on video self-attention calls."""
    m = model.clone()
    mark_self_attention(m)
    to = m.model_options.setdefault("transformer_options", {})
    previous = to.get("optimized_attention_override")
    to[ANCHOR_KEY] = context

    def override(func, *args, **kwargs):
        call_to = kwargs.get("transformer_options") or {}
        bias = None
        if BLOCK_MARK in call_to and kwargs.get("mask") is None:
            k = args[1]
            tokens = k.shape[2] if kwargs.get("skip_reshape", False) else k.shape[1]
            bias = _anchor_bias(tokens, context, args[0])
        if bias is not None:
            kwargs = {**kwargs, "mask": bias}
        return previous(func, *args, **kwargs) if previous is not None else func(*args, **kwargs)

    to["optimized_attention_override"] = override
    return m
