"""Exact local tiles through cuDNN's fused attention, when every tile is whole frames.

Meaning: ``reference.exact_local_attention``, the same outputs as ``triton_local`` (normalised
output and log2-normaliser, transposed to the ``[G, tiles, b2, b1]`` order stage 2 reads). Without
h/w splits a tile is ``tile_frames`` whole frames, i.e. a contiguous token range, and its local keys
are one contiguous range too, so the local part is ordinary dense attention of each query tile over
a window of key tokens: cuDNN's Hopper kernel runs it at near-peak tensor-core throughput, which
our gathered-row flash loop (``triton_local``) does not reach. Consecutive query tiles whose windows
have the same length and the same offset (all interior tiles; edge tiles have fewer neighbours) are
one call, and their key windows are overlapping strided views of the keys, not gathered copies:
at 480p a copy would move ~3x the keys and values through memory for every call.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .reference import MonarchLayout, local_key_tile_range

LOG2E = 1.4426950408889634


def _cudnn_inputs(q: Tensor) -> bool:
    """16-bit inputs with head width up to 128, and torch's cuDNN attention op present."""
    return (
        q.dtype in (torch.float16, torch.bfloat16)
        and q.shape[-1] <= 128
        and hasattr(torch.ops.aten, "_scaled_dot_product_cudnn_attention")
    )


def serves_attention(q: Tensor) -> bool:
    """:func:`cudnn_attention` serves queries like q: 16-bit CUDA tensors, head width up to 128."""
    return q.is_cuda and _cudnn_inputs(q)


def serves(q: Tensor, layout: MonarchLayout) -> bool:
    """Whole-frame tiles, 16-bit inputs, and torch's cuDNN attention op present."""
    return layout.h_split == 1 and layout.w_split == 1 and _cudnn_inputs(q)


def local_tiles_into(
    out: Tensor,
    lse: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    layout: MonarchLayout,
    first_tile: int,
    tiles: int,
    exact_local: int,
    scale: float,
    attend=None,
) -> None:
    """Write the local attention of query tiles ``[first_tile, first_tile + tiles)``.

    ``out`` [G, tiles, b2, b1, D] float32, ``lse`` [G, tiles, b2, b1] float32 in log2 units, with
    G = batch x heads; q, k, v are ``[B, H, N, D]``. ``attend(q, k, v, scale)`` -> (out, natural-log
    logsumexp) is cuDNN's fused attention unless given (tests pass a plain torch one).
    """
    attend = attend or cudnn_attention
    batch, heads, _, d = q.shape
    tokens = layout.b1 * layout.b2  # per tile: tile_frames whole frames
    out_tiles = out.view(batch, heads, tiles, layout.b2, layout.b1, d)
    lse_tiles = lse.view(batch, heads, tiles, layout.b2, layout.b1)
    for i0, n, key_tile, width in _window_runs(layout, first_tile, tiles, exact_local):
        for b in range(batch):  # (batch, tile) cannot share one stride: one call per sample
            queries = _tile_windows(q[b], (first_tile + i0) * tokens, n, tokens, tokens)  # [n, H, tokens, D]
            keys = _tile_windows(k[b], key_tile * tokens, n, tokens, width * tokens)  # [n, H, window, D]
            values = _tile_windows(v[b], key_tile * tokens, n, tokens, width * tokens)
            o, logsumexp = attend(queries, keys, values, scale)
            # stage 2 reads per (column j, row l): tokens are (row, column) within a tile
            o = o.unflatten(2, (layout.b1, layout.b2)).transpose(2, 3)  # [n, H, b2, b1, D]
            logsumexp = logsumexp.reshape(n, heads, layout.b1, layout.b2).transpose(2, 3)
            out_tiles[b, :, i0 : i0 + n].copy_(o.transpose(0, 1))
            lse_tiles[b, :, i0 : i0 + n].copy_(logsumexp.transpose(0, 1) * LOG2E)


def _tile_windows(x: Tensor, start: int, count: int, step: int, length: int) -> Tensor:
    """``count`` windows of ``length`` tokens of ``x`` [H, N, D], ``step`` tokens apart from token ``start``,
    as one view [count, H, length, D] (overlapping when length > step)."""
    heads, _, d = x.shape
    stride_h, stride_n, stride_d = x.stride()
    return x.as_strided((count, heads, length, d), (step * stride_n, stride_h, stride_n, stride_d),
                        x.storage_offset() + start * stride_n)  # fmt: skip


@functools.lru_cache(maxsize=256)
def _window_runs(layout: MonarchLayout, first_tile: int, tiles: int, exact_local: int) -> tuple:
    """Runs of consecutive query tiles whose key windows have the same width and offset:
    (first tile in the chunk, tiles, first key tile of the first window, window width in tiles)."""
    runs: list[list[int]] = []
    for i in range(tiles):
        lo, hi = local_key_tile_range(layout, first_tile + i, exact_local)
        last = runs[-1] if runs else None
        if last and last[3] == hi - lo and last[2] + (i - last[0]) == lo and last[0] + last[1] == i:
            last[1] += 1
        else:
            runs.append([i, 1, lo, hi - lo])
    return tuple(tuple(run) for run in runs)


def cudnn_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Output and natural-log logsumexp ``[B, H, L]`` of softmax attention, from cuDNN."""
    result = torch.ops.aten._scaled_dot_product_cudnn_attention(
        q, k, v, None, True, 0.0, False, False, scale=scale
    )
    return result[0], result[1].reshape(q.shape[:-1])  # torch 2.11 gives the lse a trailing axis of 1
