"""Stage 1 of Monarch attention: the R softmax and what it summarises (aL, cL, Y).

Meaning (``reference.log_R``, ``reference.aL``, ``reference.cL``, ``reference.Y``): for query tile
``m``, key tile ``n``, key row ``k`` and query column ``j``,

    R[m,n,k,j,:] = softmax_i(scale * aR[m,n,k,j] . K[n,k,i])      over the b2 key columns i
    aL[m,n,j,k]  = sum_i R K[n,k,i]          Y[m,n,j,k] = sum_i R V[n,k,i]
    cL[m,n,j,k]  = sum_i R log R

where ``aR`` is the (L-weighted mean) query: ``Q[m,k,j]`` in the first iteration (L = identity),
else what ``triton_stage2.refine`` wrote.

One program owns key row ``k`` of ``TILES_PER_PROGRAM`` consecutive key tiles ``n`` and a block of
``BLOCK_P`` (query tile, query column) pairs, flattened so that consecutive pairs run across query
tiles: all of them meet the same b2 keys, and 52 columns would otherwise be padded to 64 (the
flattened block wastes only its last partial block). Looping over key tiles lets the loads of the
next tile overlap the products of this one; in the first iteration the queries are loaded once.
The b2 key columns fit one ``BLOCK_I`` block in the common case (``ONE_I_BLOCK``), or two blocks
``BLOCK_I + BLOCK_I2`` held together (80 columns as 64 + 16); wider tiles stream them in blocks with
an online softmax. Logits are in log2 units (exp2).

Outputs go to scratch in the layout stage 2 streams: ``aL, Y [G, Mc, b2, key_tiles*b1, D]`` (float16
for 16-bit inputs: 8x finer than bfloat16 where it matters, since stage 2 exponentiates ``q . aL``;
float32 for float32 inputs; products run in that dtype) and ``cL`` in float32 and log2 units
(``sum_i R log2 R``), so stage 2 subtracts it from its log2 logits directly. The final iteration's cL
is key-row major, ``[G, key_tiles*b1, Mc*b2]``: a key row's values of adjacent pairs are adjacent, and
the Gluon stage 1 stores 64 of them as one 256-byte run (pair-major they were 64 scattered floats per
key row, 7.7 % of its time at 720p), while stage 2's neighbouring columns read neighbouring floats.
Earlier iterations' cL stays pair-major, ``[G, Mc, b2, key_tiles*b1]``: the refine reads one column's
cL at a time, and strided reads made it 16 % slower at 720p (17.2 -> 19.9 ms).
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


PADDING_LOGIT = tl.constexpr(-1.0e30)
"""Logit of a padding key column: exp2 of it is 0, and unlike -inf, 0 times it is 0."""


@triton.jit
def _padding(valid):
    return tl.where(valid, 0.0, PADDING_LOGIT)


@triton.jit
def _key_columns(key_row, first: tl.constexpr, BLOCK: tl.constexpr, b2):
    """Validity and token index of key columns ``[first, first + BLOCK)`` of the row at ``key_row``."""
    i = first + tl.arange(0, BLOCK)
    return i < b2, (key_row + i).to(tl.int64)


@triton.jit
def _softmax_sums(z, z2, m_i, TWO_BLOCKS: tl.constexpr):
    """exp2 of the logits less the row max (``p``, and ``p2`` of the second column block), their row
    sum and the row sum of ``p * z`` (the entropy term)."""
    p = tl.exp2(z - m_i[:, None])
    l_i = tl.sum(p, 1)
    pz_i = tl.sum(p * z, 1)
    p2 = p
    if TWO_BLOCKS:
        p2 = tl.exp2(z2 - m_i[:, None])
        l_i += tl.sum(p2, 1)
        pz_i += tl.sum(p2 * z2, 1)
    return p, p2, l_i, pz_i


@triton.jit
def _half_tile(base, token, stride, valid, first_dim: tl.constexpr, HALF: tl.constexpr, dtype: tl.constexpr):
    """Rows ``token`` of ``base``, dims ``[first_dim, first_dim + HALF)``, zero where not ``valid``."""
    d = first_dim + tl.arange(0, HALF)
    return tl.load(base + token[:, None] * stride + d[None, :], mask=valid[:, None], other=0.0).to(dtype)


@triton.jit
def _r_operands(p, l_i, keys_dtype: tl.constexpr, BF16_PRODUCTS: tl.constexpr):
    """R = p / l as the tensor-core operands of aL (``r_keys``, plus ``r_keys_lo`` when split) and Y.

    ``BF16_PRODUCTS`` 0: both in ``keys_dtype`` (float16 for 16-bit inputs). 1: Y takes R in bfloat16,
    so bfloat16 values go to the tensor cores unconverted (Y feeds the output linearly: relative L2
    5.9e-4 -> 8.7e-4 in a float64 emulation at 480p). 2: the keys stay bfloat16 too and aL takes R as
    two bfloat16 terms, hi + lo (16 mantissa bits: aL feeds stage 2's exponent, where one bfloat16 R
    costs 4.5e-3)."""
    R = p / l_i[:, None]
    if BF16_PRODUCTS == 2:
        r_keys = R.to(tl.bfloat16)
        r_keys_lo = (R - r_keys.to(tl.float32)).to(tl.bfloat16)
        r_values = r_keys
    else:
        r_keys = R.to(keys_dtype)
        r_keys_lo = r_keys  # not read
        if BF16_PRODUCTS == 1:
            r_values = R.to(tl.bfloat16)
        else:
            r_values = r_keys
    return r_keys, r_keys_lo, r_values


@triton.jit
def _keys_product(r_keys, r_keys_lo, keys, acc, SPLIT: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """``R @ keys`` (+ ``acc``), with R as hi + lo terms when ``SPLIT``."""
    acc = tl.dot(r_keys, keys, acc, input_precision=DOT_PRECISION)
    if SPLIT:
        acc = tl.dot(r_keys_lo, keys, acc, input_precision=DOT_PRECISION)
    return acc


@triton.jit
def _half_d_summaries(
    q_lo, q_hi, k_base, v_base, stride_kn, stride_vn, key_row, b2, qk_scale, AL, Y, out_row, active,
    HEAD_DIM: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_I2: tl.constexpr, FINAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr, BF16_PRODUCTS: tl.constexpr,
):  # fmt: skip
    """``_row_summaries`` with ``HALF_D`` (one column block, or two): every product after the logits
    is split in two halves of the head dim, so aL and Y are each two [BLOCK_P, D/2] accumulators,
    stored one after the other, and the largest live accumulator has half the registers. Returns the
    softmax statistics (max, sum, sum of p * z) for the caller's cL."""
    HALF: tl.constexpr = HEAD_DIM // 2
    SPLIT: tl.constexpr = BF16_PRODUCTS == 2
    dtype = q_lo.dtype
    dh = tl.arange(0, HALF)
    i_valid, token = _key_columns(key_row, 0, BLOCK_I, b2)
    k_lo = _half_tile(k_base, token, stride_kn, i_valid, 0, HALF, dtype)
    k_hi = _half_tile(k_base, token, stride_kn, i_valid, HALF, HALF, dtype)
    z = tl.dot(q_lo, tl.trans(k_lo), input_precision=DOT_PRECISION)
    z = tl.dot(q_hi, tl.trans(k_hi), z, input_precision=DOT_PRECISION) * qk_scale + _padding(i_valid)[None, :]
    m_i = tl.max(z, 1)
    z2 = z
    if BLOCK_I2 > 0:
        i2_valid, token2 = _key_columns(key_row, BLOCK_I, BLOCK_I2, b2)
        k2_lo = _half_tile(k_base, token2, stride_kn, i2_valid, 0, HALF, dtype)
        k2_hi = _half_tile(k_base, token2, stride_kn, i2_valid, HALF, HALF, dtype)
        z2 = tl.dot(q_lo, tl.trans(k2_lo), input_precision=DOT_PRECISION)
        z2 = tl.dot(q_hi, tl.trans(k2_hi), z2, input_precision=DOT_PRECISION) * qk_scale
        z2 += _padding(i2_valid)[None, :]
        m_i = tl.maximum(m_i, tl.max(z2, 1))
    p, p2, l_i, pz_i = _softmax_sums(z, z2, m_i, BLOCK_I2 > 0)
    R, R_lo, R_v = _r_operands(p, l_i, dtype, BF16_PRODUCTS)
    al_lo = AL + out_row[:, None] * HEAD_DIM + dh[None, :]
    acc = _keys_product(R, R_lo, k_lo, None, SPLIT, DOT_PRECISION)
    if BLOCK_I2 > 0:
        R2, R2_lo, R2_v = _r_operands(p2, l_i, dtype, BF16_PRODUCTS)
        acc = _keys_product(R2, R2_lo, k2_lo, acc, SPLIT, DOT_PRECISION)
    tl.store(al_lo, acc.to(AL.dtype.element_ty), mask=active[:, None])
    acc = _keys_product(R, R_lo, k_hi, None, SPLIT, DOT_PRECISION)
    if BLOCK_I2 > 0:
        acc = _keys_product(R2, R2_lo, k2_hi, acc, SPLIT, DOT_PRECISION)
    tl.store(al_lo + HALF, acc.to(AL.dtype.element_ty), mask=active[:, None])
    if FINAL:
        y_lo = Y + out_row[:, None] * HEAD_DIM + dh[None, :]
        for half in tl.static_range(2):
            acc = tl.dot(R_v, _half_tile(v_base, token, stride_vn, i_valid, half * HALF, HALF, R_v.dtype),
                         input_precision=DOT_PRECISION)  # fmt: skip
            if BLOCK_I2 > 0:
                v2 = _half_tile(v_base, token2, stride_vn, i2_valid, half * HALF, HALF, R_v.dtype)
                acc = tl.dot(R2_v, v2, acc, input_precision=DOT_PRECISION)
            tl.store(y_lo + half * HALF, acc.to(Y.dtype.element_ty), mask=active[:, None])
    return m_i, l_i, pz_i


@triton.jit
def _row_summaries(
    q,
    q_hi,
    k_base,
    v_base,
    stride_kn,
    stride_vn,
    key_row,
    b2,
    qk_scale,
    AL,
    Y,
    CL,
    out_row,
    cl_row,
    active,
    HEAD_DIM: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_I2: tl.constexpr,
    FINAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    ONE_I_BLOCK: tl.constexpr,
    HALF_D: tl.constexpr,
    BF16_PRODUCTS: tl.constexpr,
):
    """Store aL, Y and cL (log2 units) of the queries ``q`` against one key row of b2 tokens at
    rows ``out_row`` of the scratch (Y only when ``FINAL``: earlier iterations need aL alone).

    ``HALF_D`` (with ``ONE_I_BLOCK``): ``q`` and ``q_hi`` are the two halves of the head dim and the
    products run per half (``_half_d_summaries``); otherwise ``q_hi`` is not read.

    ``BLOCK_I2 > 0`` (with ``ONE_I_BLOCK``): the columns are two blocks, ``BLOCK_I`` then ``BLOCK_I2``,
    both in registers before the softmax, so no rescaling: 80 columns (720p) as 64 + 16 instead of
    padded to 128, 37 % fewer products."""
    d = tl.arange(0, HEAD_DIM)
    dtype = q.dtype
    al_ptrs = AL + out_row[:, None] * HEAD_DIM + d[None, :]
    y_ptrs = Y + out_row[:, None] * HEAD_DIM + d[None, :]
    if HALF_D:
        m_i, l_i, pz_i = _half_d_summaries(
            q, q_hi, k_base, v_base, stride_kn, stride_vn, key_row, b2, qk_scale, AL, Y, out_row, active,
            HEAD_DIM, BLOCK_I, BLOCK_I2, FINAL, DOT_PRECISION, BF16_PRODUCTS,
        )  # fmt: skip
    elif ONE_I_BLOCK:
        # Common case (b2 <= BLOCK_I): normalise R first, then aL (stored at once) and Y, so only
        # one float32 accumulator is live at a time: 164 instead of 194 registers at 4 warps (ptxas),
        # i.e. three programs per SM instead of two.
        i_valid, token = _key_columns(key_row, 0, BLOCK_I, b2)
        keys = tl.load(k_base + token[:, None] * stride_kn + d[None, :], mask=i_valid[:, None], other=0.0)
        keys = keys.to(dtype)
        # padding columns get a large finite negative logit in the same FFMA as the scale (not a select
        # to -inf): their p is exactly 0 and p * z stays 0 in the entropy sum, with no second mask
        z = tl.dot(q, tl.trans(keys), input_precision=DOT_PRECISION) * qk_scale + _padding(i_valid)[None, :]
        m_i = tl.max(z, 1)
        z2 = z
        if BLOCK_I2 > 0:
            i2_valid, token2 = _key_columns(key_row, BLOCK_I, BLOCK_I2, b2)
            keys2 = tl.load(k_base + token2[:, None] * stride_kn + d[None, :], mask=i2_valid[:, None], other=0.0)
            keys2 = keys2.to(dtype)
            z2 = tl.dot(q, tl.trans(keys2), input_precision=DOT_PRECISION) * qk_scale + _padding(i2_valid)[None, :]
            m_i = tl.maximum(m_i, tl.max(z2, 1))
        p, p2, l_i, pz_i = _softmax_sums(z, z2, m_i, BLOCK_I2 > 0)
        R, R_lo, R_v = _r_operands(p, l_i, dtype, BF16_PRODUCTS)
        aL = _keys_product(R, R_lo, keys, None, BF16_PRODUCTS == 2, DOT_PRECISION)
        if BLOCK_I2 > 0:
            R2, R2_lo, R2_v = _r_operands(p2, l_i, dtype, BF16_PRODUCTS)
            aL = _keys_product(R2, R2_lo, keys2, aL, BF16_PRODUCTS == 2, DOT_PRECISION)
        tl.store(al_ptrs, aL.to(AL.dtype.element_ty), mask=active[:, None])
        if FINAL:
            values = tl.load(
                v_base + token[:, None] * stride_vn + d[None, :], mask=i_valid[:, None], other=0.0
            )
            y = tl.dot(R_v, values.to(R_v.dtype), input_precision=DOT_PRECISION)
            if BLOCK_I2 > 0:
                values2 = tl.load(
                    v_base + token2[:, None] * stride_vn + d[None, :], mask=i2_valid[:, None], other=0.0
                )
                y = tl.dot(R2_v, values2.to(R2_v.dtype), y, input_precision=DOT_PRECISION)
            tl.store(y_ptrs, y.to(Y.dtype.element_ty), mask=active[:, None])
    else:
        m_i = tl.full([BLOCK_P], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_P], tl.float32)
        pz_i = tl.zeros([BLOCK_P], tl.float32)  # sum of p * z, for the entropy term
        acc_al = tl.zeros([BLOCK_P, HEAD_DIM], tl.float32)
        acc_y = tl.zeros([BLOCK_P, HEAD_DIM], tl.float32)
        for i0 in range(0, b2, BLOCK_I):
            i = i0 + tl.arange(0, BLOCK_I)
            i_valid = i < b2
            token = (key_row + i).to(tl.int64)
            keys = tl.load(k_base + token[:, None] * stride_kn + d[None, :], mask=i_valid[:, None], other=0.0)
            keys = keys.to(dtype)
            z = tl.dot(q, tl.trans(keys), input_precision=DOT_PRECISION) * qk_scale
            z = tl.where(i_valid[None, :], z, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(z, 1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(z - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, 1)
            pz_i = pz_i * alpha + tl.sum(p * tl.where(i_valid[None, :], z, 0.0), 1)
            acc_al = tl.dot(p.to(dtype), keys, acc_al * alpha[:, None], input_precision=DOT_PRECISION)
            if FINAL:
                values = tl.load(
                    v_base + token[:, None] * stride_vn + d[None, :], mask=i_valid[:, None], other=0.0
                )
                acc_y = tl.dot(
                    p.to(dtype), values.to(dtype), acc_y * alpha[:, None], input_precision=DOT_PRECISION
                )
            m_i = m_new
        tl.store(al_ptrs, (acc_al / l_i[:, None]).to(AL.dtype.element_ty), mask=active[:, None])
        if FINAL:
            tl.store(y_ptrs, (acc_y / l_i[:, None]).to(Y.dtype.element_ty), mask=active[:, None])
    # sum_i R log2 R with log2 R = z - m - log2(l): the R-weighted mean of z minus the log2-normaliser.
    tl.store(CL + cl_row, pz_i / l_i - m_i - tl.log2(l_i), mask=active)


@triton.jit(do_not_specialize=_RUNTIME_INTS)
def monarch_stage1_kernel(
    Q,
    K,
    V,
    AR,
    AL,
    Y,
    CL,
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
    exact_local,
    qk_scale,
    HEAD_DIM: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_I2: tl.constexpr,
    TILES_PER_PROGRAM: tl.constexpr,
    FIRST: tl.constexpr,
    FINAL: tl.constexpr,
    HAS_LOCAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    ONE_I_BLOCK: tl.constexpr,
    HALF_D: tl.constexpr = False,
    BF16_PRODUCTS: tl.constexpr = 0,
):
    """``HALF_D`` (with ``ONE_I_BLOCK``): the products after the logits in two halves of the head
    dim (``_half_d_summaries``), for fewer registers per program.

    ``BF16_PRODUCTS`` (with ``ONE_I_BLOCK``, bfloat16 inputs; ``_r_operands``): 1 sends the values to
    the tensor cores as loaded, 2 (``FIRST`` only: later iterations' queries are float16 scratch) the
    queries and keys too, so no key tile is converted to float16 in registers."""
    pid_p = tl.program_id(0)
    pid_nk = tl.program_id(1)
    g = tl.program_id(2)
    k = pid_nk % b1
    if HAS_LOCAL and TILES_PER_PROGRAM > 1:
        # Key tiles attended exactly by *every* pair of the block carry no Monarch mass for it: the
        # block's programs step over them (tile t of the block's list is key tile t, or t + skipped
        # past the window), so no program computes them; a grid block left without tiles returns.
        # (720p node default 2.1 % faster, 480p 0.8 %: bench/results/monarch_ab_skip_local_h100_session10.json;
        # one-tile programs skip per tile below, and this index math cost them 0.7 % at the chunk shape)
        last_pair = tl.minimum(pid_p * BLOCK_P + BLOCK_P, query_tiles * b2) - 1
        group_lo = query_group_offset + (query_tile_first + pid_p * BLOCK_P // b2) // tiles_per_group
        group_hi = query_group_offset + (query_tile_first + last_pair // b2) // tiles_per_group
        skip_lo = tl.maximum(group_hi - exact_local, 0) * tiles_per_group
        skip_hi = tl.minimum((group_lo + exact_local + 1) * tiles_per_group, key_tiles)
        skipped = tl.maximum(skip_hi - skip_lo, 0)
    else:
        skip_lo = key_tiles
        skipped = 0
    n_first = (pid_nk // b1) * TILES_PER_PROGRAM
    n_last = tl.minimum(n_first + TILES_PER_PROGRAM, key_tiles - skipped)
    pairs = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    m = pairs // b2  # query tile within this chunk
    j = pairs % b2
    valid = pairs < query_tiles * b2
    batch = g // heads
    head = g % heads
    d = tl.arange(0, HEAD_DIM)
    nk = key_tiles * b1
    scratch_dtype = AL.dtype.element_ty
    if BF16_PRODUCTS == 2:
        q_dtype = Q.dtype.element_ty
    else:
        q_dtype = scratch_dtype
    query_group = query_group_offset + (query_tile_first + m) // tiles_per_group
    k_base = K + batch.to(tl.int64) * stride_kb + head.to(tl.int64) * stride_kh
    v_base = V + batch.to(tl.int64) * stride_vb + head.to(tl.int64) * stride_vh
    out_row0 = ((g * query_tiles + m).to(tl.int64) * b2 + j) * nk + k
    if FINAL:  # cL key-row major for stage 2, pair-major for the refine (the module docstring says why)
        cl_row0 = (g.to(tl.int64) * nk + k) * (query_tiles * b2) + pairs
        cl_tile_stride = b1.to(tl.int64) * (query_tiles * b2)
    else:
        cl_row0 = out_row0
        cl_tile_stride = b1.to(tl.int64)

    if FIRST:
        # L = identity: the query of row k itself, the same for every key tile (loaded once).
        q_token = tile_row_token(
            query_tile_first + m, k, tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, b2
        )
        q_base = Q + batch.to(tl.int64) * stride_qb + head.to(tl.int64) * stride_qh
        q_rows = (q_token + j).to(tl.int64)
        if HALF_D:
            q_first = _half_tile(q_base, q_rows, stride_qn, valid, 0, HEAD_DIM // 2, q_dtype)
            q_first_hi = _half_tile(q_base, q_rows, stride_qn, valid, HEAD_DIM // 2, HEAD_DIM // 2, q_dtype)
        else:
            q_first = tl.load(
                q_base + q_rows[:, None] * stride_qn + d[None, :], mask=valid[:, None], other=0.0
            ).to(q_dtype)
            q_first_hi = q_first  # not read without HALF_D

    # Several key tiles per program: the loads of the next tile overlap this tile's products.
    for t in range(n_first, n_last):
        n = t + tl.where(t >= skip_lo, skipped, 0)
        active = valid
        if HAS_LOCAL:
            # Pairs whose key tile is attended exactly carry no Monarch mass: nothing to store.
            active = active & (tl.abs(query_group - n // tiles_per_group) > exact_local)
        if HAS_LOCAL and TILES_PER_PROGRAM == 1:
            # a block with no pair left (its query tiles all near key tile n) skips the products too;
            # only with one tile per program: a branch in the tile loop stops Triton's pipelining of
            # the next tile's loads (SASS: no cp.async left, 72 more bytes spilled)
            any_active = tl.max(active.to(tl.int32), 0) > 0
        else:
            any_active = True
        if any_active:
            key_row = tile_row_token(
                n, k, tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, b2
            )
            if FIRST:
                q, q_hi = q_first, q_first_hi
            else:
                ar_row = ((g * query_tiles + m).to(tl.int64) * nk + n * b1 + k) * b2 + j
                if HALF_D:
                    q = _half_tile(AR, ar_row, HEAD_DIM, active, 0, HEAD_DIM // 2, scratch_dtype)
                    q_hi = _half_tile(AR, ar_row, HEAD_DIM, active, HEAD_DIM // 2, HEAD_DIM // 2, scratch_dtype)
                else:
                    q = tl.load(AR + ar_row[:, None] * HEAD_DIM + d[None, :], mask=active[:, None], other=0.0)
                    q = q.to(q_dtype)  # aR comes in the input dtype (exact in float16: a mean of the queries)
                    q_hi = q
            _row_summaries(
                q, q_hi, k_base, v_base, stride_kn, stride_vn, key_row, b2, qk_scale, AL, Y, CL,
                out_row0 + n * b1, cl_row0 + n * cl_tile_stride, active, HEAD_DIM, BLOCK_P, BLOCK_I, BLOCK_I2,
                FINAL, DOT_PRECISION, ONE_I_BLOCK, HALF_D, BF16_PRODUCTS,
            )  # fmt: skip
