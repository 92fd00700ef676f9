"""One Triton pass for Wan's q/k RMS norm + RoPE (meaning: ``reference.py``).

A program owns one token: it loads the token's ``C`` channels as (even, odd) pairs, reduces the
mean square in float32, scales by the weight, rounds to the output dtype (as ComfyUI's separate
norm does), rotates each pair by the token's RoPE matrix for its head position and stores the
result, which may be a view into a larger buffer (the KV cache's slots).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _qk_norm_rope_kernel(
    X,
    W,
    F,
    OUT,
    tokens,
    x_batch_stride,
    x_token_stride,
    f_batch_stride,
    f_token_stride,
    out_batch_stride,
    out_token_stride,
    eps,
    CHANNELS: tl.constexpr,
    HALF_HEAD: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    b = row // tokens
    s = row % tokens
    p = tl.arange(0, BLOCK_P)  # pair index over the whole token
    valid = p < CHANNELS // 2
    x_row = X + b * x_batch_stride + s * x_token_stride
    x0 = tl.load(x_row + 2 * p, mask=valid, other=0.0).to(tl.float32)
    x1 = tl.load(x_row + 2 * p + 1, mask=valid, other=0.0).to(tl.float32)
    mean_square = (tl.sum(x0 * x0, axis=0) + tl.sum(x1 * x1, axis=0)) / CHANNELS
    inv_rms = 1.0 / tl.sqrt(mean_square + eps)
    w0 = tl.load(W + 2 * p, mask=valid, other=0.0).to(tl.float32)
    w1 = tl.load(W + 2 * p + 1, mask=valid, other=0.0).to(tl.float32)
    dtype = OUT.dtype.element_ty
    y0 = (x0 * inv_rms * w0).to(dtype).to(tl.float32)
    y1 = (x1 * inv_rms * w1).to(dtype).to(tl.float32)
    f_row = F + b * f_batch_stride + s * f_token_stride + 4 * (p % HALF_HEAD)
    f00 = tl.load(f_row, mask=valid, other=0.0)
    f01 = tl.load(f_row + 1, mask=valid, other=0.0)
    f10 = tl.load(f_row + 2, mask=valid, other=0.0)
    f11 = tl.load(f_row + 3, mask=valid, other=0.0)
    out_row = OUT + b * out_batch_stride + s * out_token_stride
    tl.store(out_row + 2 * p, (f00 * y0 + f01 * y1).to(dtype), mask=valid)
    tl.store(out_row + 2 * p + 1, (f10 * y0 + f11 * y1).to(dtype), mask=valid)


def qk_norm_rope(x: torch.Tensor, weight: torch.Tensor, eps: float, freqs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``x``, ``out``: [B, S, C] with unit channel stride; ``freqs`` [B or 1, S, 1, D/2, 2, 2] float32
    whose last three dims are contiguous; ``weight`` [C] contiguous."""
    b, s, c = x.shape
    half_head = freqs.shape[-3]
    f_batch_stride = freqs.stride(0) if freqs.shape[0] > 1 else 0
    _qk_norm_rope_kernel[(b * s,)](
        x, weight, freqs, out, s,
        x.stride(0), x.stride(1), f_batch_stride, freqs.stride(1), out.stride(0), out.stride(1), eps,
        CHANNELS=c, HALF_HEAD=half_head, BLOCK_P=triton.next_power_of_2(c // 2),
        num_warps=4 if c <= 2048 else 8,
    )  # fmt: skip
    return out
