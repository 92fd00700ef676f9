"""Exact local tiles: dense attention of a query tile over the key tiles near it (beyond upstream).

Meaning: ``reference.exact_local_attention``. For query tile ``m`` in tile-frame group ``a`` the key
tiles of groups ``a - r .. a + r`` (clipped) are attended exactly; this kernel returns their
normalised output and log2-normaliser, which ``triton_stage2`` merges with the Monarch blocks by
seeding its online softmax.

One program owns ``BLOCK_M`` tokens of one query tile (flattened ``(row l, column j)``) and streams
the local keys, flattened ``(tile n, row k, column i)``, in ``BLOCK_N`` blocks: a flash-attention
loop whose rows are gathered by tile geometry (each key row is b2 contiguous tokens).

Outputs, in the layout stage 2 reads per (m, j) column: ``out [G, Mc, b2, b1, D]`` float32 and
``lse [G, Mc, b2, b1]`` float32 in log2 units.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_tiles import tile_row_token

_RUNTIME_INTS = [
    "query_tile_first",
    "query_tiles",
    "query_group_offset",
    "key_groups",
    "heads",
    "b1",
    "b2",
    "tiles_per_group",
    "w_split",
    "rows_per_frame",
    "tile_frames",
    "height",
    "width",
    "exact_local",
]
"""Integer arguments Triton must not specialise (on == 1 or % 16): one compiled kernel serves every
grid and tiling; they only enter per-row index math, never a block shape."""


@triton.jit(do_not_specialize=_RUNTIME_INTS)
def monarch_local_kernel(
    Q,
    K,
    V,
    LOCAL_OUT,
    LOCAL_LSE,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
    heads,
    query_tile_first,
    query_tiles,
    b1,
    b2,
    tiles_per_group,
    w_split,
    rows_per_frame,
    tile_frames,
    height,
    width,
    query_group_offset,
    key_groups,
    exact_local,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_t = tl.program_id(0)
    m = tl.program_id(1)
    g = tl.program_id(2)
    tile_tokens = b1 * b2
    t = pid_t * BLOCK_M + tl.arange(0, BLOCK_M)
    t_valid = t < tile_tokens
    row = t // b2
    col = t % b2
    batch = g // heads
    head = g % heads
    d = tl.arange(0, HEAD_DIM)

    q_token = (
        tile_row_token(
            query_tile_first + m,
            row,
            tiles_per_group,
            w_split,
            rows_per_frame,
            tile_frames,
            height,
            width,
            b2,
        )
        + col
    )
    q_base = Q + batch.to(tl.int64) * stride_qb + head.to(tl.int64) * stride_qh
    q = tl.load(
        q_base + q_token.to(tl.int64)[:, None] * stride_qn + d[None, :], mask=t_valid[:, None], other=0.0
    )
    k_base = K + batch.to(tl.int64) * stride_kb + head.to(tl.int64) * stride_kh
    v_base = V + batch.to(tl.int64) * stride_vb + head.to(tl.int64) * stride_vh

    group = query_group_offset + (query_tile_first + m) // tiles_per_group
    c_lo = tl.maximum(group - exact_local, 0) * tiles_per_group * tile_tokens
    c_hi = tl.minimum(group + exact_local + 1, key_groups) * tiles_per_group * tile_tokens

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    for c0 in range(c_lo, c_hi, BLOCK_N):
        c = c0 + tl.arange(0, BLOCK_N)
        c_valid = c < c_hi
        n = c // tile_tokens
        within = c % tile_tokens
        token = (
            tile_row_token(
                n, within // b2, tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, b2
            )
            + within % b2
        ).to(tl.int64)
        keys = tl.load(k_base + token[:, None] * stride_kn + d[None, :], mask=c_valid[:, None], other=0.0)
        s = tl.dot(q, tl.trans(keys), input_precision=DOT_PRECISION) * qk_scale
        s = tl.where(c_valid[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        values = tl.load(v_base + token[:, None] * stride_vn + d[None, :], mask=c_valid[:, None], other=0.0)
        acc = tl.dot(p.to(values.dtype), values, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new

    # Stage 2's (m, j) columns read these, so store transposed to [.., b2 (j), b1 (l), ..].
    out_row = ((g * query_tiles + m).to(tl.int64) * b2 + col) * b1 + row
    tl.store(LOCAL_LSE + out_row, m_i + tl.log2(l_i), mask=t_valid)
    tl.store(LOCAL_OUT + out_row[:, None] * HEAD_DIM + d[None, :], acc / l_i[:, None], mask=t_valid[:, None])
