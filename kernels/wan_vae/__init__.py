"""Fused elementwise steps of the Wan VAE decoder: a Triton pass on CUDA, torch elsewhere.

``reference.py`` defines the meaning; ``triton_fused.py`` is imported lazily, the first time a CUDA
call can use it, so importing this package never needs Triton. ``backend="torch"`` forces the
reference (tests, and anyone debugging a difference).
"""

from __future__ import annotations

import torch

from ..lazy_triton import TRITON_DTYPES, check_backend, triton_module
from .reference import NORM_EPS, add_bias_residual_reference, rms_norm_silu_reference

__all__ = ["NORM_EPS", "add_bias_residual", "add_bias_residual_reference", "rms_norm_silu", "rms_norm_silu_reference"]


def _triton_for(*tensors: torch.Tensor, backend: str):
    check_backend(backend)
    if backend == "torch" or not all(t.is_cuda and t.dtype in TRITON_DTYPES for t in tensors):
        if backend == "triton":
            raise ValueError("the triton backend needs CUDA tensors of float16, bfloat16 or float32")
        return None
    module = triton_module(__name__)
    if module is None and backend == "triton":
        raise RuntimeError("the triton backend needs the triton package")
    return module


def rms_norm_silu(
    x: torch.Tensor,
    gamma: torch.Tensor,
    scale: float,
    in_bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """``silu(normalize(x + in_bias, dim=1) * scale * gamma)`` for [B, C, T, H, W] activations,
    written into ``out`` when given (a view into a causal conv's input buffer, say)."""
    module = _triton_for(x, backend=backend)
    if module is not None:
        if out is None:
            out = torch.empty_like(x, memory_format=torch.channels_last_3d)
        x_stride = module.rows_layout(x)
        if x_stride is None:
            x = x.contiguous(memory_format=torch.channels_last_3d)
            x_stride = module.rows_layout(x)
        out_stride = module.rows_layout(out)
        if out_stride is not None:
            gamma = gamma.reshape(-1).contiguous()
            in_bias = None if in_bias is None else in_bias.reshape(-1).contiguous()
            return module.rms_norm_silu(x, gamma, scale, in_bias, out, x_stride, out_stride)
    return rms_norm_silu_reference(x, gamma, scale, in_bias, out)


def add_bias_residual(
    x: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """``x + bias + residual`` in place into ``x``: a convolution's output whose bias was left out."""
    module = _triton_for(x, residual, backend=backend)
    if (
        module is not None
        and x.shape == residual.shape
        and x.dtype == residual.dtype
        and x.is_contiguous(memory_format=torch.channels_last_3d)
        and residual.is_contiguous(memory_format=torch.channels_last_3d)
    ):
        bias = None if bias is None else bias.reshape(-1).contiguous()
        return module.add_bias_residual(x, bias, residual)
    return add_bias_residual_reference(x, bias, residual)
