"""The Wan transformer block's norm and residual steps, one pass each: Triton on CUDA, torch elsewhere.

``reference.py`` defines the meaning (ComfyUI's ops, in its order); ``triton_fused.py`` is imported
lazily the first time a CUDA call can use it, so importing this package never needs Triton.
``backend="torch"`` forces the reference.
"""

from __future__ import annotations

import torch

from ..lazy_triton import TRITON_DTYPES, check_backend, triton_module
from .reference import norm_step_reference

__all__ = ["norm_step", "norm_step_reference"]


def _fits_triton(x, residual, gate, weight, bias, shift, scale) -> bool:
    if not (x.is_cuda and x.dtype in TRITON_DTYPES and x.dim() == 3 and x.is_contiguous()):
        return False
    b, _, c = x.shape
    if residual is not None and not (residual.shape == x.shape and residual.dtype == x.dtype and residual.is_contiguous()):
        return False
    if (shift is None) != (scale is None) or (weight is None) != (bias is None):
        return False
    vectors = [v for v in (gate, shift, scale) if v is not None]
    # the block's modulation vectors are views of one [B, 1, 6, C] tensor: unit channel stride, a shared batch stride
    if any(v.shape != (b, 1, c) or v.dtype != x.dtype or v.stride(2) != 1 for v in vectors):
        return False
    if vectors and any(v.stride(0) != vectors[0].stride(0) for v in vectors):
        return False
    if any(v.device != x.device for v in vectors):
        return False
    return weight is None or (
        weight.shape == (c,) == bias.shape
        and weight.device == x.device == bias.device
        and weight.is_contiguous()
        and bias.is_contiguous()
    )


def norm_step(
    x: torch.Tensor,
    eps: float,
    residual: torch.Tensor | None = None,
    gate: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    shift: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x', h)``: ``x' = x + residual * gate``, ``h = addcmul(shift, LayerNorm(x'), 1 + scale)``
    (each part optional, see ``reference.py``) in one pass on CUDA, outside torch.compile."""
    check_backend(backend)
    module = None
    # under torch.compile the reference is traced: the compiler fuses those ops itself
    compiling = backend == "auto" and torch.compiler.is_compiling()
    if backend != "torch" and not compiling and _fits_triton(x, residual, gate, weight, bias, shift, scale):
        module = triton_module(__name__)
    if module is None:
        if backend == "triton":
            raise ValueError(
                "the triton backend needs contiguous CUDA activations [B, S, C] (float16, bfloat16 or float32), "
                "per-sample vectors [B, 1, C] of the same dtype, and the triton package"
            )
        return norm_step_reference(x, eps, residual, gate, weight, bias, shift, scale)
    return module.norm_step(x, eps, residual, gate, weight, bias, shift, scale)
