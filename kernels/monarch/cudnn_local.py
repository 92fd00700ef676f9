"""Exact local tiles through cuDNN's fused attention, when every tile is whole frames.

Meaning: ``reference.exact_local_attention``, the same outputs as ``triton_local`` (normalised
output and log2-normaliser, transposed to the ``[G, tiles, b2, b1]`` order stage 2 reads). Without
h/w splits a tile is ``tile_frames`` whole frames, i.e. a contiguous token range, and its local keys
are one contiguous range too, so the local part is ordinary dense attention of each query tile over
a window of key tokens: cuDNN's Hopper kernel runs it at near-peak tensor-core throughput, which
our gathered-row flash loop (``triton_local``) does not reach. Query tiles are batched by window
length (edge tiles have fewer neighbours); the windows are gathered once (a copy of about
``2 * exact_local + 1`` times the chunk's keys).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .reference import MonarchLayout, local_key_tile_range

LOG2E = 1.4426950408889634


def serves(q: Tensor, layout: MonarchLayout) -> bool:
    """Whole-frame tiles, 16-bit inputs, and torch's cuDNN attention op present."""
    return (
        layout.h_split == 1
        and layout.w_split == 1
        and q.dtype in (torch.float16, torch.bfloat16)
        and q.shape[-1] <= 128
        and hasattr(torch.ops.aten, "_scaled_dot_product_cudnn_attention")
    )


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
    q_tiles = q[:, :, first_tile * tokens : (first_tile + tiles) * tokens].unflatten(2, (tiles, tokens))
    out_tiles = out.view(batch, heads, tiles, layout.b2, layout.b1, d)
    lse_tiles = lse.view(batch, heads, tiles, layout.b2, layout.b1)
    for index, key_index in _window_groups(layout, first_tile, tiles, exact_local, q.device):
        n = len(index)
        # One gather per tensor, then (B, n) as the batch of one fused call over all heads.
        keys = k[:, :, key_index].transpose(1, 2).flatten(0, 1)  # [B*n, H, window tokens, D]
        values = v[:, :, key_index].transpose(1, 2).flatten(0, 1)
        queries = q_tiles[:, :, index].transpose(1, 2).flatten(0, 1)  # [B*n, H, tokens, D]
        o, logsumexp = attend(queries, keys, values, scale)
        o = o.unflatten(0, (batch, n)).transpose(1, 2)  # [B, H, n, tokens, D]
        logsumexp = logsumexp.reshape(batch, n, heads, tokens).transpose(1, 2)
        # stage 2 reads per (column j, row l): tokens are (row, column) within a tile
        o = o.unflatten(3, (layout.b1, layout.b2)).transpose(3, 4)
        logsumexp = logsumexp.unflatten(3, (layout.b1, layout.b2)).transpose(3, 4)
        out_tiles.index_copy_(2, index, o.float())
        lse_tiles.index_copy_(2, index, logsumexp.float() * LOG2E)


@functools.lru_cache(maxsize=256)
def _window_groups(layout: MonarchLayout, first_tile: int, tiles: int, exact_local: int, device: torch.device):
    """Query tiles grouped by key-window length: (tile index [n], key token index [n, window tokens]).

    Cached per call shape: building them from Python lists is a host-to-device copy, which costs
    host time on every call and cannot be captured in a CUDA graph.
    """
    tokens = layout.b1 * layout.b2
    windows = [local_key_tile_range(layout, first_tile + i, exact_local) for i in range(tiles)]
    groups = []
    for width in sorted({hi - lo for lo, hi in windows}):
        members = [i for i, (lo, hi) in enumerate(windows) if hi - lo == width]
        index = torch.tensor(members, device=device)
        starts = torch.tensor([windows[i][0] * tokens for i in members], device=device)
        groups.append((index, starts[:, None] + torch.arange(width * tokens, device=device)))
    return tuple(groups)


def cudnn_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """Output and natural-log logsumexp ``[B, H, L]`` of softmax attention, from cuDNN."""
    result = torch.ops.aten._scaled_dot_product_cudnn_attention(
        q, k, v, None, True, 0.0, False, False, scale=scale
    )
    return result[0], result[1]
