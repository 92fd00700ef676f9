"""Meaning of the Wan transformer block's norm and residual steps, in torch (any device).

ComfyUI's ``WanAttentionBlock.forward`` (``comfy/ldm/wan/model.py``) runs, around its attention and
MLP calls, a chain of separate passes over the ``[B, S, C]`` activations: modulation
``addcmul(shift, LayerNorm(x), 1 + scale)`` before self-attention and the MLP, the gated residual
``addcmul(x, y, gate)`` after self-attention, LayerNorm (with its weight and bias) before
cross-attention, and the residual add after it. Each is 1-3 kernels and as many host dispatches.
``norm_step`` is one of these steps in ComfyUI's order and rounding; ``triton_fused.py`` does the
same step in one pass per token.

``shift``, ``scale``, ``gate``: ``[B, 1, C]`` (one timestep per sample), views of the block's
``[B, 1, 6, C]`` modulation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def norm_step_reference(
    x: torch.Tensor,
    eps: float,
    residual: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    shift: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x' = x + residual * gate`` (or ``x + residual``, or ``x``), then ``h = LayerNorm(x')`` with the
    optional weight and bias, then ``h = addcmul(shift, h, 1 + scale)`` when modulated.
    Returns ``(x', h)``."""
    if residual is not None:
        x = torch.addcmul(x, residual, gate) if gate is not None else x + residual
    h = F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
    if shift is not None:
        h = torch.addcmul(shift, h, 1 + scale)
    return x, h
