"""Keys outside the video grid (text tokens, reference or guide frames), attended exactly.

HunyuanVideo's joint attention puts its text tokens beside the video tokens, Wan's reference latent
and LTX-Video's guide frames add tokens that are not on the grid. Monarch's factors only describe
the grid, so every query attends these *extra* keys exactly: dense softmax attention over them gives
an output and its log-normaliser, merged with the rest (exact local tiles and Monarch blocks) by
log-sum-exp, the same merge as the exact local tiles (``reference.monarch_attention_reference``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MAX_LOGITS = 1 << 24
"""Logits per piece of :func:`extra_attention` (64 MiB in float32): bounds its memory."""


def check_extra(q: Tensor, extra_k: Tensor | None, extra_v: Tensor | None, extra_bias: float = 0.0) -> None:
    """Raise a ValueError unless the extras are absent together or ``[B, H, Ne, D]`` like q, and
    ``extra_bias`` (added to their logits) is a finite number, non-zero only with extras."""
    if not math.isfinite(extra_bias):
        raise ValueError(f"Monarch attention: extra_bias must be finite, got {extra_bias!r}")
    if extra_k is None and extra_v is None:
        if extra_bias:
            raise ValueError("Monarch attention: extra_bias is added to the extra keys' logits; pass extra_k, extra_v")
        return
    if extra_k is None or extra_v is None:
        raise ValueError("Monarch attention: extra_k and extra_v come together (keys outside the grid and their values)")
    if extra_k.dim() != 4 or extra_k.shape[:2] != q.shape[:2] or extra_k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"Monarch attention: extra_k must be [batch, heads, tokens, head_dim] like q {tuple(q.shape)}, "
            f"got {tuple(extra_k.shape)}"
        )
    if extra_v.shape[:3] != extra_k.shape[:3]:
        raise ValueError(
            f"Monarch attention: extra_v {tuple(extra_v.shape)} must match extra_k {tuple(extra_k.shape)} "
            "in batch, heads and tokens"
        )
    if extra_k.shape[2] == 0:
        raise ValueError("Monarch attention: extra_k has no tokens; pass None instead")


def extra_attention(q: Tensor, extra_k: Tensor, extra_v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Dense attention of q ``[G, ..., D]`` (any query layout after the group axis) over the extra keys
    ``[G, Ne, D]``.

    Returns the normalised output ``[G, ..., Dv]`` and its natural-log normaliser ``[G, ...]``, in
    float32 (float64 for float64 inputs). Queries go in pieces of at most ``MAX_LOGITS`` logits.
    """
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    k, v = extra_k.to(dtype), extra_v.to(dtype)
    layout = q.shape[:-1]
    queries = q.reshape(q.shape[0], -1, q.shape[-1])
    groups, nq = queries.shape[:2]
    out = torch.empty(groups, nq, v.shape[-1], dtype=dtype, device=q.device)
    lse = torch.empty(groups, nq, dtype=dtype, device=q.device)
    rows = max(1, MAX_LOGITS // max(1, groups * k.shape[-2]))
    for start in range(0, nq, rows):
        part = slice(start, start + rows)
        logits = torch.matmul(queries[:, part].to(dtype), k.transpose(-1, -2)) * scale
        lse[:, part] = torch.logsumexp(logits, dim=-1)
        out[:, part] = torch.matmul(torch.exp(logits - lse[:, part, None]), v)
    return out.reshape(*layout, v.shape[-1]), lse.reshape(layout)


def merge_into(out: Tensor, lse: Tensor, other_out: Tensor, other_lse: Tensor, *, base2: bool = False) -> None:
    """``(out, lse) <- softmax merge of (out, lse) and (other_out, other_lse)``, in place.

    ``out`` ``[..., D]`` are normalised outputs and ``lse`` ``[...]`` their log-normalisers (natural
    logs, or log2 with ``base2``, both alike): the result is the attention over the union of both key sets."""
    add, exp = (torch.logaddexp2, torch.exp2) if base2 else (torch.logaddexp, torch.exp)
    total = add(lse, other_lse)
    out.mul_(exp(lse - total).unsqueeze(-1)).add_(other_out * exp(other_lse - total).unsqueeze(-1))
    lse.copy_(total)


def attention_with_biased_extras(q: Tensor, grid_kv: tuple, extra_kv: tuple, bias: float) -> Tensor:
    """Exact attention of q ``[B, H, M, D]`` over grid keys and extra keys ``(k, v)`` (each ``[B, H, N, D]``)
    with ``bias`` on the extras' logits: the two parts merged by log-sum-exp.

    What an additive mask of ``bias`` on the extra keys computes, without the mask: cuDNN takes none, and
    masked SDPA is several times slower. 16-bit CUDA inputs go through cuDNN, others through
    :func:`extra_attention` (float32). Returns q's dtype."""
    from . import cudnn_local

    scale = q.shape[-1] ** -0.5
    b, h, m, d = q.shape
    parts = []
    for keys, values in (grid_kv, extra_kv):
        if cudnn_local.serves_attention(q) and not torch.cuda.is_current_stream_capturing():
            try:
                out, lse = cudnn_local.cudnn_attention(q, keys.contiguous(), values.contiguous(), scale)
                parts.append((out.float(), lse.float()))
                continue
            except RuntimeError:  # a shape cuDNN declines: the exact torch path below
                pass
        out, lse = extra_attention(q.reshape(b * h, m, d), keys.flatten(0, 1), values.flatten(0, 1), scale)
        parts.append((out.reshape(b, h, m, -1), lse.reshape(b, h, m)))
    (out, lse), (extra_out, extra_lse) = parts
    merge_into(out, lse, extra_out, extra_lse + bias)
    return out.to(q.dtype)
