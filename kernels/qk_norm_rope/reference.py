"""Meaning of Wan self-attention's query/key preparation, in torch (any device).

Wan's ``WanSelfAttention`` (ComfyUI ``comfy/ldm/wan/model.py``) takes the q (or k) projection
``[B, S, C]``, RMS-normalises it over all ``C = heads * head_dim`` channels with a learnt weight,
rounds to the model's dtype, then rotates every (even, odd) channel pair of each head by its token's
RoPE matrix in float32 (``comfy/ldm/flux/math.apply_rope1``) and rounds again. That is five or six
kernels and as many host dispatches per call; ``triton_fused.py`` does it in one pass.

``freqs``: ``[B or 1, S, 1, head_dim / 2, 2, 2]`` float32 rotation matrices, as Wan's
``rope_embedder`` makes them (``out[.., r] = f[.., r, 0] * x_even + f[.., r, 1] * x_odd``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def qk_norm_rope_reference(
    x: torch.Tensor, weight: torch.Tensor, eps: float, freqs: torch.Tensor, heads: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """RMS norm over the last dim (times ``weight``), then RoPE per head; ``[B, S, C]`` in x's dtype."""
    b, s, c = x.shape
    y = F.rms_norm(x, (c,), weight=weight.to(x.dtype), eps=eps)
    pairs = y.view(b, s, heads, c // heads).to(freqs.dtype).reshape(b, s, heads, -1, 1, 2)
    rotated = freqs[..., 0] * pairs[..., 0]
    rotated.addcmul_(freqs[..., 1], pairs[..., 1])
    result = rotated.reshape(b, s, c).to(x.dtype)
    if out is None:
        return result
    out.copy_(result)
    return out
