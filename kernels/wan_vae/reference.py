"""Meaning of the Wan VAE decoder's fused elementwise steps, in torch (any device, any layout).

The decoder's residual blocks run ``RMS_norm -> SiLU -> causal conv3d`` twice and add the block's
input. ComfyUI does this as separate passes over the activations (normalise: a reduction and a
division; two scalings; SiLU; the conv's bias; the residual add). ``triton_fused.py`` does the same
arithmetic in one pass per step; these functions are what it must equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORM_EPS = 1e-12
"""``F.normalize``'s default eps, which ComfyUI's ``RMS_norm`` relies on."""


def _channel_view(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return vector.reshape((1, -1) + (1,) * (like.dim() - 2)).to(like.dtype)


def rms_norm_silu_reference(
    x: torch.Tensor,
    gamma: torch.Tensor,
    scale: float,
    in_bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``silu(normalize(x + in_bias, dim=1) * scale * gamma)`` over channels (dim 1).

    ``in_bias`` is the bias of the convolution that produced ``x`` when that convolution ran
    without it (so the add costs no pass of its own); ``out`` may be a view into a larger buffer.
    """
    if in_bias is not None:
        x = x + _channel_view(in_bias, x)
    y = F.silu(F.normalize(x, dim=1, eps=NORM_EPS) * scale * _channel_view(gamma, x))
    if out is None:
        return y
    out.copy_(y)
    return out


def add_bias_residual_reference(x: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor) -> torch.Tensor:
    """``x + bias + residual`` written into ``x`` (the output of a convolution run without its bias)."""
    if bias is not None:
        x.add_(_channel_view(bias, x))
    return x.add_(residual)
