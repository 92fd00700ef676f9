"""Wan self-attention's q/k RMS norm + RoPE in one pass: Triton on CUDA, torch elsewhere.

``reference.py`` defines the meaning (ComfyUI's norm, then ``apply_rope1``); ``triton_fused.py`` is
imported lazily the first time a CUDA call can use it, so importing this package never needs
Triton. ``backend="torch"`` forces the reference.
"""

from __future__ import annotations

import torch

from ..lazy_triton import TRITON_DTYPES, check_backend, triton_module
from .reference import qk_norm_rope_reference

__all__ = ["qk_norm_rope", "qk_norm_rope_reference"]


def _fits_triton(x, weight, freqs, heads, out) -> bool:
    b, s, c = x.shape
    return (
        x.is_cuda
        and x.dtype in TRITON_DTYPES
        and x.stride(-1) == 1
        and (out is None or (out.shape == x.shape and out.dtype == x.dtype and out.stride(-1) == 1))
        and weight.shape == (c,)
        and freqs.dtype == torch.float32
        and freqs.dim() == 6
        and freqs.shape[0] in (1, b)
        and freqs.shape[1] == s
        and freqs.shape[2] == 1
        and freqs.shape[3:] == (c // heads // 2, 2, 2)
        and c % heads == 0
        and (c // heads) % 2 == 0
    )


def qk_norm_rope(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    freqs: torch.Tensor,
    heads: int,
    out: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """RMS norm of ``x`` [B, S, C] over C times ``weight``, then each head's channel pairs rotated by
    ``freqs`` (Wan's RoPE); written into ``out`` when given (a view of the KV cache, say)."""
    check_backend(backend)
    # under torch.compile the reference is traced: the compiler fuses those ops itself
    compiling = backend == "auto" and torch.compiler.is_compiling()
    fits = backend != "torch" and not compiling and _fits_triton(x, weight, freqs, heads, out)
    module = triton_module(__name__) if fits else None
    if module is None:
        if backend == "triton":
            raise ValueError(
                "the triton backend needs CUDA tensors (float16, bfloat16 or float32, unit channel stride), "
                "Wan's float32 RoPE matrices [B, S, 1, head_dim/2, 2, 2] and the triton package"
            )
        return qk_norm_rope_reference(x, weight, eps, freqs, heads, out)
    weight = weight.to(x.dtype).contiguous()
    if freqs.stride(-1) != 1 or freqs.stride(-2) != 2 or freqs.stride(-3) != 4:
        freqs = freqs.contiguous()
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    return module.qk_norm_rope(x, weight, eps, freqs, out)
