"""Stage 2 of Monarch attention: the L softmax over (key tile, key row), then the output or refined queries.

Meaning (``reference.L_logits``, ``reference.Z``, ``reference.aR_mean``): for query tile ``m``,
column ``j`` and row ``l``, with ``c = (n, k)`` running over key tiles and key rows,

    log L[c, l] = scale * Q[m,l,j] . aL[m,n,j,k] - cL[m,n,j,k] - lse[l]      (lse: joint over all c)
    out[m,l,j]  = sum_c L Y[m,n,j,k]                                          (final iteration)
    aR[m,n,k,j] = sum_l softmax_l(log L[c, :]) Q[m,l,j]                       (next iteration's query)

For one (m, j) this is a small attention problem: ``b1`` queries (the column's rows) against
``key_tiles * b1`` summary keys aL with values Y, which stage 1 stored contiguously for it.
One program owns one (m, j) and all its rows; ``c`` is streamed in ``BLOCK_C`` blocks with an
online softmax in log2 units.

Exact local tiles: the key tiles near the query tile are attended exactly by ``triton_local``,
which hands over their normalised output and log-normaliser. Those seed the online softmax (state
``max = lse_local, sum = 1, acc = out_local``), and their ``c`` range is skipped, which is the
reference's joint normalisation over Monarch blocks *and* local keys.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_tiles import tile_row_token

_RUNTIME_INTS = [
    "query_tile_first",
    "query_tiles",
    "key_tiles",
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


@triton.jit
def _block_logits(
    q, AL, CL, base_row, cl_column, pairs, c, c_valid, qk_scale, HEAD_DIM: tl.constexpr,
    DOT_PRECISION: tl.constexpr, AL_POLICY: tl.constexpr,
):
    """log2 logits ``[BLOCK_L, BLOCK_C]`` of the (m, j) queries against summary keys ``c``."""
    d = tl.arange(0, HEAD_DIM)
    rows = base_row + c.to(tl.int64)
    al = tl.load(AL + rows[:, None] * HEAD_DIM + d[None, :], mask=c_valid[:, None], other=0.0,
                 eviction_policy=AL_POLICY)  # fmt: skip
    cl = tl.load(CL + cl_column + c.to(tl.int64) * pairs, mask=c_valid, other=0.0)
    s = tl.dot(q, tl.trans(al), input_precision=DOT_PRECISION) * qk_scale - cl[None, :]
    return tl.where(c_valid[None, :], s, float("-inf"))


@triton.jit
def _attend_range(
    q,
    AL,
    Y,
    CL,
    base_row,
    cl_column,
    pairs,
    c_lo,
    c_hi,
    m_i,
    l_i,
    acc,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_C: tl.constexpr,
    WITH_VALUES: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    AL_POLICY: tl.constexpr,
):
    """Online softmax over ``c in [c_lo, c_hi)``; with values it also accumulates ``sum p Y``."""
    d = tl.arange(0, HEAD_DIM)
    for c0 in range(c_lo, c_hi, BLOCK_C):
        c = c0 + tl.arange(0, BLOCK_C)
        c_valid = c < c_hi
        s = _block_logits(q, AL, CL, base_row, cl_column, pairs, c, c_valid, qk_scale, HEAD_DIM, DOT_PRECISION,
                          AL_POLICY)  # fmt: skip
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if WITH_VALUES:
            rows = base_row + c.to(tl.int64)
            y = tl.load(Y + rows[:, None] * HEAD_DIM + d[None, :], mask=c_valid[:, None], other=0.0)
            acc = tl.dot(p.to(y.dtype), y, acc * alpha[:, None], input_precision=DOT_PRECISION)
        m_i = m_new
    return m_i, l_i, acc


@triton.jit
def _refine_range(
    q,
    AL,
    CL,
    AR,
    base_row,
    cl_column,
    pairs,
    ar_row0,
    ar_stride_c,
    c_lo,
    c_hi,
    lse,
    l_valid,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_C: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    REVERSE: tl.constexpr,
):
    """Write ``aR[c] = sum_l softmax_l(log L[c, l]) q[l]`` for ``c in [c_lo, c_hi)``.

    ``REVERSE`` walks the blocks last to first, right after pass 1 walked them first to last: the
    blocks pass 1 read last are still in L2 (kept there by its ``evict_last`` loads), so pass 2's
    first reads hit and only the older ones go back to DRAM; its own reads and aR's stores are
    marked ``evict_first`` so that they do not push out the blocks still to come."""
    d = tl.arange(0, HEAD_DIM)
    blocks = tl.cdiv(c_hi - c_lo, BLOCK_C)
    for b in range(blocks):
        c0 = c_lo + ((blocks - 1 - b) if REVERSE else b) * BLOCK_C
        c = c0 + tl.arange(0, BLOCK_C)
        c_valid = c < c_hi
        s = _block_logits(q, AL, CL, base_row, cl_column, pairs, c, c_valid, qk_scale, HEAD_DIM, DOT_PRECISION,
                          "evict_first" if REVERSE else "")  # fmt: skip
        log_l = tl.where(l_valid[:, None], s - lse[:, None], float("-inf"))
        log_l = tl.where(c_valid[None, :], log_l, 0.0)  # padding columns: any finite value
        w = tl.exp2(log_l - tl.max(log_l, 0)[None, :])
        w = w / tl.sum(w, 0)[None, :]
        ar = tl.dot(tl.trans(w).to(q.dtype), q, input_precision=DOT_PRECISION)  # [BLOCK_C, D]
        ar_rows = ar_row0 + c.to(tl.int64) * ar_stride_c
        tl.store(
            AR + ar_rows[:, None] * HEAD_DIM + d[None, :], ar.to(AR.dtype.element_ty), mask=c_valid[:, None],
            eviction_policy="evict_first" if REVERSE else "",
        )


@triton.jit
def _column_setup(
    Q,
    stride_qb,
    stride_qh,
    stride_qn,
    heads,
    g,
    m,
    j,
    query_tile_first,
    b1,
    b2,
    tiles_per_group,
    w_split,
    rows_per_frame,
    tile_frames,
    height,
    width,
    HEAD_DIM: tl.constexpr,
    BLOCK_L: tl.constexpr,
    SCRATCH_DTYPE: tl.constexpr,
):
    """The (m, j) column's queries ``[BLOCK_L, D]`` in the scratch dtype, token index and row mask."""
    rows = tl.arange(0, BLOCK_L)
    l_valid = rows < b1
    d = tl.arange(0, HEAD_DIM)
    token = (
        tile_row_token(
            query_tile_first + m,
            rows,
            tiles_per_group,
            w_split,
            rows_per_frame,
            tile_frames,
            height,
            width,
            b2,
        )
        + j
    )
    batch = g // heads
    head = g % heads
    q_base = Q + batch.to(tl.int64) * stride_qb + head.to(tl.int64) * stride_qh
    q = tl.load(
        q_base + token.to(tl.int64)[:, None] * stride_qn + d[None, :], mask=l_valid[:, None], other=0.0
    )
    return q.to(SCRATCH_DTYPE), token, l_valid


@triton.jit
def _initial_stats(LOCAL_LSE, column, b1, l_valid, HAS_LOCAL: tl.constexpr, BLOCK_L: tl.constexpr):
    """Online-softmax (max, sum) before the Monarch blocks: empty, or the exact local part's."""
    if HAS_LOCAL:
        m_i = tl.load(LOCAL_LSE + column * b1 + tl.arange(0, BLOCK_L), mask=l_valid, other=0.0)
        l_i = tl.full([BLOCK_L], 1.0, tl.float32)
    else:
        m_i = tl.full([BLOCK_L], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_L], tl.float32)
    return m_i, l_i


@triton.jit
def _local_c_range(
    m,
    query_tile_first,
    query_group_offset,
    tiles_per_group,
    key_groups,
    exact_local,
    b1,
    HAS_LOCAL: tl.constexpr,
):
    """``[lo, hi)`` of ``c`` attended exactly (empty without exact local tiles: ``exact_local`` -1 with
    an exact part of extra keys only)."""
    if HAS_LOCAL:
        group = query_group_offset + (query_tile_first + m) // tiles_per_group
        lo = tl.maximum(group - exact_local, 0) * tiles_per_group * b1
        hi = tl.maximum(tl.minimum(group + exact_local + 1, key_groups) * tiles_per_group * b1, lo)
    else:
        lo = 0
        hi = 0
    return lo, hi


@triton.jit(do_not_specialize=_RUNTIME_INTS)
def monarch_stage2_kernel(
    Q,
    AL,
    Y,
    CL,
    LOCAL_OUT,
    LOCAL_LSE,
    OUT,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_ob,
    stride_oh,
    stride_on,
    heads,
    query_tile_first,
    query_tiles,
    key_tiles,
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
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
    HAS_LOCAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Final iteration: ``out[m, :, j] = sum_c L Y`` for one (query tile m, column j)."""
    column = tl.program_id(0)  # m * b2 + j within the chunk
    g = tl.program_id(1)
    m = column // b2
    j = column % b2
    q, token, l_valid = _column_setup(
        Q, stride_qb, stride_qh, stride_qn, heads, g, m, j, query_tile_first, b1, b2,
        tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, HEAD_DIM, BLOCK_L,
        AL.dtype.element_ty,
    )  # fmt: skip
    nk = key_tiles * b1
    flat_column = (g * query_tiles + m).to(tl.int64) * b2 + j
    base_row = flat_column * nk
    pairs = query_tiles * b2  # the final iteration's cL is key-row major: [G, key rows, pairs]
    cl_column = g.to(tl.int64) * nk * pairs + m * b2 + j
    m_i, l_i = _initial_stats(LOCAL_LSE, flat_column, b1, l_valid, HAS_LOCAL, BLOCK_L)
    d = tl.arange(0, HEAD_DIM)
    if HAS_LOCAL:  # the local part's normalised output, weight 1 at max = its log-normaliser
        local_rows = flat_column * b1 + tl.arange(0, BLOCK_L)
        acc = tl.load(
            LOCAL_OUT + local_rows[:, None] * HEAD_DIM + d[None, :], mask=l_valid[:, None], other=0.0
        )
    else:
        acc = tl.zeros([BLOCK_L, HEAD_DIM], tl.float32)
    lo, hi = _local_c_range(
        m, query_tile_first, query_group_offset, tiles_per_group, key_groups, exact_local, b1, HAS_LOCAL
    )
    m_i, l_i, acc = _attend_range(
        q, AL, Y, CL, base_row, cl_column, pairs, 0, lo, m_i, l_i, acc, qk_scale, HEAD_DIM, BLOCK_C, True,
        DOT_PRECISION, "",
    )  # fmt: skip
    m_i, l_i, acc = _attend_range(
        q, AL, Y, CL, base_row, cl_column, pairs, hi, nk, m_i, l_i, acc, qk_scale, HEAD_DIM, BLOCK_C, True,
        DOT_PRECISION, "",
    )  # fmt: skip
    out = acc / l_i[:, None]
    batch = g // heads
    head = g % heads
    o_base = OUT + batch.to(tl.int64) * stride_ob + head.to(tl.int64) * stride_oh
    tl.store(
        o_base + token.to(tl.int64)[:, None] * stride_on + d[None, :],
        out.to(OUT.dtype.element_ty),
        mask=l_valid[:, None],
    )


@triton.jit(do_not_specialize=_RUNTIME_INTS)
def monarch_refine_kernel(
    Q,
    AL,
    CL,
    LOCAL_LSE,
    AR,
    stride_qb,
    stride_qh,
    stride_qn,
    heads,
    query_tile_first,
    query_tiles,
    key_tiles,
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
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
    HAS_LOCAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    REVERSE: tl.constexpr = False,
):
    """Non-final iteration: the joint log-normaliser (pass 1), then the next queries aR (pass 2).

    aR goes to ``[G, Mc, key_tiles*b1, b2, D]``: for stage 1, a key row's query columns are adjacent.
    """
    column = tl.program_id(0)
    g = tl.program_id(1)
    m = column // b2
    j = column % b2
    q, token, l_valid = _column_setup(
        Q, stride_qb, stride_qh, stride_qn, heads, g, m, j, query_tile_first, b1, b2,
        tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, HEAD_DIM, BLOCK_L,
        AL.dtype.element_ty,
    )  # fmt: skip
    nk = key_tiles * b1
    flat_column = (g * query_tiles + m).to(tl.int64) * b2 + j
    base_row = flat_column * nk
    pairs = 1  # a non-final iteration's cL is pair-major, like aL (triton_stage1's docstring)
    cl_column = base_row
    m_i, l_i = _initial_stats(LOCAL_LSE, flat_column, b1, l_valid, HAS_LOCAL, BLOCK_L)
    acc = tl.zeros([BLOCK_L, HEAD_DIM], tl.float32)  # unused: pass 1 needs no values
    lo, hi = _local_c_range(
        m, query_tile_first, query_group_offset, tiles_per_group, key_groups, exact_local, b1, HAS_LOCAL
    )
    keep: tl.constexpr = "evict_last" if REVERSE else ""
    m_i, l_i, acc = _attend_range(
        q, AL, AL, CL, base_row, cl_column, pairs, 0, lo, m_i, l_i, acc, qk_scale, HEAD_DIM, BLOCK_C, False,
        DOT_PRECISION, keep,
    )  # fmt: skip
    m_i, l_i, acc = _attend_range(
        q, AL, AL, CL, base_row, cl_column, pairs, hi, nk, m_i, l_i, acc, qk_scale, HEAD_DIM, BLOCK_C, False,
        DOT_PRECISION, keep,
    )  # fmt: skip
    lse = m_i + tl.log2(l_i)
    ar_row0 = (g * query_tiles + m).to(tl.int64) * nk * b2 + j
    # reversed, the range pass 1 read last ([hi, nk)) goes first
    _refine_range(
        q, AL, CL, AR, base_row, cl_column, pairs, ar_row0, b2, hi, nk, lse, l_valid, qk_scale, HEAD_DIM, BLOCK_C,
        DOT_PRECISION, REVERSE,
    )  # fmt: skip
    _refine_range(
        q, AL, CL, AR, base_row, cl_column, pairs, ar_row0, b2, 0, lo, lse, l_valid, qk_scale, HEAD_DIM, BLOCK_C,
        DOT_PRECISION, REVERSE,
    )  # fmt: skip
