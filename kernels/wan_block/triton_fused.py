"""One Triton pass per norm step of the Wan block (meaning: ``reference.py``).

A program owns one token's ``C`` channels: the residual update, the LayerNorm's mean and variance in
float32, the optional affine and modulation, each rounded to the activations' dtype where ComfyUI's
separate ops round, and both results stored.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _norm_step_kernel(
    X,
    RES,
    GATE,
    W,
    B,
    SHIFT,
    SCALE,
    X_OUT,
    H_OUT,
    tokens,
    vec_batch_stride,
    eps,
    CHANNELS: tl.constexpr,
    HAS_RES: tl.constexpr,
    HAS_GATE: tl.constexpr,
    HAS_AFFINE: tl.constexpr,
    HAS_MOD: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    batch = row // tokens
    c = tl.arange(0, BLOCK_C)
    valid = c < CHANNELS
    dtype = H_OUT.dtype.element_ty
    x = tl.load(X + row * CHANNELS + c, mask=valid, other=0.0).to(tl.float32)
    vec = batch * vec_batch_stride + c
    if HAS_RES:
        r = tl.load(RES + row * CHANNELS + c, mask=valid, other=0.0).to(tl.float32)
        if HAS_GATE:
            r = r * tl.load(GATE + vec, mask=valid, other=0.0).to(tl.float32)
        x = (x + r).to(dtype).to(tl.float32)
        tl.store(X_OUT + row * CHANNELS + c, x.to(dtype), mask=valid)
    mean = tl.sum(x, axis=0) / CHANNELS
    centred = tl.where(valid, x - mean, 0.0)
    inv_std = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=0) / CHANNELS + eps)
    h = centred * inv_std
    if HAS_AFFINE:
        h = h * tl.load(W + c, mask=valid, other=0.0).to(tl.float32) + tl.load(B + c, mask=valid, other=0.0).to(tl.float32)
    if HAS_MOD:
        h = h.to(dtype).to(tl.float32)
        one_plus = (1.0 + tl.load(SCALE + vec, mask=valid, other=0.0).to(tl.float32)).to(dtype).to(tl.float32)
        h = tl.load(SHIFT + vec, mask=valid, other=0.0).to(tl.float32) + h * one_plus
    tl.store(H_OUT + row * CHANNELS + c, h.to(dtype), mask=valid)


def norm_step(x, eps, residual, gate, weight, bias, shift, scale):
    """Contiguous ``x`` / ``residual`` [B, S, C]; per-sample vectors [B, 1, C] contiguous."""
    b, s, c = x.shape
    h = torch.empty_like(x)
    x_out = torch.empty_like(x) if residual is not None else x
    vectors = [v for v in (gate, shift, scale) if v is not None]
    vec_batch_stride = vectors[0].stride(0) if vectors and b > 1 else 0
    _norm_step_kernel[(b * s,)](
        x, x if residual is None else residual, x if gate is None else gate,
        x if weight is None else weight, x if bias is None else bias,
        x if shift is None else shift, x if scale is None else scale, x_out, h, s, vec_batch_stride, eps,
        CHANNELS=c, HAS_RES=residual is not None, HAS_GATE=gate is not None, HAS_AFFINE=weight is not None,
        HAS_MOD=shift is not None, BLOCK_C=triton.next_power_of_2(c), num_warps=4 if c <= 2048 else 8,
    )  # fmt: skip
    return x_out, h
