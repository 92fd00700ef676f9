"""Triton kernels for the Wan VAE decoder's elementwise steps (meaning: ``reference.py``).

Both kernels read channels-last-3d activations as rows of ``C`` contiguous channels, one row per
(frame, row, column) position, so the RMS norm's reduction over channels is a reduction over one
row in registers. A batch's rows must be contiguous (``rows_layout``); the batch stride is free,
which lets the norm write straight into the frames after the cached ones of a causal conv's input
buffer (no concatenation, no padding copy).

Arithmetic in float32, stored in the output's dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

ELEMENTS_PER_PROGRAM = 4096
"""Rows x padded channels per program: enough bytes in flight per SM for a memory-bound pass."""


def rows_layout(t: torch.Tensor) -> int | None:
    """The batch stride if ``t`` [B, C, T, H, W] stores each batch as contiguous rows of C channels."""
    if t.dim() != 5:
        return None
    _, c, frames, h, w = t.shape
    if t.stride(1) != 1 and c > 1:
        return None
    if (frames > 1 and t.stride(2) != h * w * c) or (h > 1 and t.stride(3) != w * c) or (w > 1 and t.stride(4) != c):
        return None
    return t.stride(0)


@triton.jit
def _rms_norm_silu_kernel(
    X,
    OUT,
    GAMMA,
    IN_BIAS,
    rows,
    channels,
    x_batch_stride,
    out_batch_stride,
    scale,
    eps,
    HAS_BIAS: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    batch = tl.program_id(1).to(tl.int64)
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = tl.arange(0, BLOCK_C)
    channel_ok = c < channels
    mask = (r[:, None] < rows) & channel_ok[None, :]
    offsets = r[:, None] * channels + c[None, :]
    x = tl.load(X + batch * x_batch_stride + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(IN_BIAS + c, mask=channel_ok, other=0.0).to(tl.float32)
        x = tl.where(mask, x + bias[None, :], 0.0)
    norm = tl.sqrt(tl.sum(x * x, axis=1))
    inverse = scale / tl.maximum(norm, eps)
    gamma = tl.load(GAMMA + c, mask=channel_ok, other=0.0).to(tl.float32)
    y = x * inverse[:, None] * gamma[None, :]
    y = y / (1.0 + tl.exp(-y))
    tl.store(OUT + batch * out_batch_stride + offsets, y.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _add_bias_residual_kernel(X, BIAS, RESIDUAL, elements, channels, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = i < elements
    y = tl.load(X + i, mask=ok, other=0.0).to(tl.float32) + tl.load(RESIDUAL + i, mask=ok, other=0.0).to(tl.float32)
    if HAS_BIAS:
        y += tl.load(BIAS + i % channels, mask=ok, other=0.0).to(tl.float32)
    tl.store(X + i, y.to(X.dtype.element_ty), mask=ok)


def rms_norm_silu(x, gamma, scale, in_bias, out, x_batch_stride: int, out_batch_stride: int) -> torch.Tensor:
    """The batch strides are ``rows_layout`` of ``x`` and ``out``, checked by the caller
    (``__init__.rms_norm_silu``)."""
    batches, channels = x.shape[0], x.shape[1]
    rows = x.shape[2] * x.shape[3] * x.shape[4]
    block_c = triton.next_power_of_2(channels)
    block_r = max(1, ELEMENTS_PER_PROGRAM // block_c)
    grid = (triton.cdiv(rows, block_r), batches)
    _rms_norm_silu_kernel[grid](
        x, out, gamma, in_bias if in_bias is not None else gamma, rows, channels,
        x_batch_stride, out_batch_stride, float(scale), 1e-12,
        HAS_BIAS=in_bias is not None, BLOCK_R=block_r, BLOCK_C=block_c, num_warps=4,
    )  # fmt: skip
    return out


def add_bias_residual(x, bias, residual) -> torch.Tensor:
    """``x`` and ``residual`` dense with the same strides (checked by the caller)."""
    elements = x.numel()
    block = 2048
    _add_bias_residual_kernel[(triton.cdiv(elements, block),)](
        x, bias if bias is not None else x, residual, elements, x.shape[1],
        HAS_BIAS=bias is not None, BLOCK=block, num_warps=4,
    )  # fmt: skip
    return x
