"""Stage 1 of Monarch attention as a warp-specialised Hopper kernel (Gluon), for the common case.

Meaning: ``triton_stage1`` (``reference.aL``, ``reference.Y``, ``reference.cL``) for every iteration
with whole-frame tiles (no h/w split), 16-bit inputs and head dim 64 or 128, on sm_90. Outputs go to
the same scratch, in the same layout; later iterations read aR from ``triton_stage2.refine``.

Why a second kernel: the Triton stage 1 is latency-bound (Nsight Compute, session 9: 3 warps per
scheduler, 17 % tensor-pipe activity) because each 4-warp program loads its key tiles, converts them,
runs three products and stores through its own registers. Here one CTA holds three partitions:

* a producer warp that loads each key row's keys and values with TMA into a ring of ``STAGES``
  shared buffers (mbarrier ready/empty pairs),
* two consumer warpgroups of 64 (query tile, column) pairs each, which share every loaded key row:
  logits, softmax, aL = R K with R as hi + lo terms of the input dtype (the keys never pass through
  registers), Y = R V with R in one term, and aL / Y leave through shared memory as TMA stores,
  overlapped with the next key row (or, ``PLAIN_STORES``, as the threads' own stores).

Key tiles attended exactly by every pair of a CTA (``exact_local``) are stepped over, as in
``triton_stage1``; the other local ones are computed and never read by stage 2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .gluon_hopper import (
    HAS_GLUON,
    SHARED_MEMORY_BYTES,
    TensorDescriptor,
    fence_async_shared,
    gl,
    gluon,
    is_hopper,
    mbarrier,
    shared_layout,
    tma,
    warpgroup_mma,
)

PAIRS_PER_CONSUMER = 64
"""wgmma's M: one warpgroup's block of (query tile, column) pairs."""

CANDIDATES = (
    [{"impl": "gluon", "TILES": tiles, "STAGES": 3} for tiles in (7, 4, 11, 21)]
    + [{"impl": "gluon", "TILES": tiles, "STAGES": 3, "FP16_KEYS": True} for tiles in (7, 11, 21)]
    + [{"impl": "gluon", "TILES": 21, "STAGES": 3, "FP16_KEYS": True, "PLAIN_STORES": True}]
)
"""Key tiles per CTA and TMA ring depth. H100, 480p / 720p / Self-Forcing chunk: 7 tiles took 1.93 /
15.6 / 0.342 ms, 4 tiles 2.03 / 17.5 / 0.387 ms, the tuned Triton stage 1 2.39 / 23.3 / 0.396 ms
(bench/gluon_stage1_probe.py); 3 stages use ~200 KB of shared memory at 80 columns: one CTA per SM.
11 and 21 tiles: the tuner takes them for the aL-only first stage 1 of iterations 2 (half the stores per key
row, so a CTA's start and drain weigh more), and 7 tiles elsewhere. ``FP16_KEYS`` (bfloat16 inputs):
the producer warp turns each stage's keys into float16 in shared memory, so aL takes R as one float16 term
(11 bits against the two bfloat16 terms' 16: 7.8-8.3e-4 relative L2 of the output instead of 6.6-6.9e-4,
bench/stage1_numerics.py) in one product instead of two; the queries meet the keys as
float16 (a query or key beyond float16's range, 65504, would overflow; aL's float16 scratch already needs the
keys within it). ``PLAIN_STORES``: aL and Y leave the staging buffer as 16-byte stores of the consumer's threads
instead of TMA stores; the bytes are the same. Alone, in one process (bench/stage1_tail_probe.py on branch
``stage1-split-plain-stores``), 480p's stage 1 took 1.742 instead of 1.802 ms, 720p's 3.695 instead of 3.445
and the Self-Forcing chunk's 0.351 instead of 0.337: the tuner decides per shape."""


def column_blocks(b2: int) -> tuple[int, int]:
    """(first, second) key-column blocks, powers of two (TMA boxes): 52 -> (64, 0), 80 -> (64, 16)."""
    first = max(16, min(64, 1 << (b2 - 1).bit_length()))
    rest = b2 - first
    return first, (0 if rest <= 0 else max(16, 1 << (rest - 1).bit_length()))


def serves(q: Tensor, k: Tensor, v: Tensor, layout) -> bool:
    """Hopper, Gluon present, whole-frame tiles, 16-bit inputs, TMA-able strides (any iteration)."""
    if not (HAS_GLUON and q.is_cuda and is_hopper(q.device.index or 0)):
        return False
    if layout.h_split != 1 or layout.w_split != 1 or layout.b2 > 128:
        return False
    if q.dtype not in (torch.float16, torch.bfloat16) or not (k.dtype == v.dtype == q.dtype):
        return False
    if q.shape[-1] not in (64, 128):
        return False
    # TMA: last dim contiguous, other strides and the base 16-byte aligned
    return all(
        x.stride(-1) == 1 and all(s * x.element_size() % 16 == 0 for s in x.stride()[:-1]) and x.data_ptr() % 16 == 0
        for x in (k, v)
    )


if HAS_GLUON:
    PADDING_LOGIT = gl.constexpr(-1.0e30)

    @gluon.jit
    def _tile_list(pair0, pairs_total, b2, key_tiles, n_first, query_tile_first, query_group_offset, exact_local,
                   TILES: gl.constexpr, PAIRS: gl.constexpr, HAS_LOCAL: gl.constexpr):  # fmt: skip
        """(skip_lo, skipped, count): this CTA's key tiles are t = n_first .. n_first + count - 1, read as
        n = t, or t + skipped from skip_lo on (past the tiles all its pairs attend exactly)."""
        skip_lo = key_tiles
        skipped = 0
        if HAS_LOCAL:
            last_pair = gl.minimum(pair0 + PAIRS, pairs_total) - 1
            group_lo = query_group_offset + query_tile_first + pair0 // b2
            group_hi = query_group_offset + query_tile_first + last_pair // b2
            skip_lo = gl.maximum(group_hi - exact_local, 0)
            skipped = gl.maximum(gl.minimum(group_lo + exact_local + 1, key_tiles) - skip_lo, 0)
        count = gl.minimum(key_tiles - skipped - n_first, TILES)
        return skip_lo, skipped, count

    @gluon.jit
    def _keys_to_fp16(bufs, s, ROWS: gl.constexpr, HEAD_DIM: gl.constexpr):
        """A ring stage's ``ROWS`` keys, bfloat16 -> float16 in place, 8 rows at a time (one warp: each thread
        writes back exactly what it read, so no other thread's read is overtaken)."""
        rows8: gl.constexpr = gl.BlockedLayout([1, 8], [2, 16], [1, 1], [1, 0])
        rank4: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=4)
        tile = bufs.index(s).reshape([ROWS, HEAD_DIM])
        out = bufs.index(s)._reinterpret(gl.float16, [1, 1, ROWS, HEAD_DIM], rank4).reshape([ROWS, HEAD_DIM])
        for r in gl.static_range(0, ROWS, 8):
            out.slice(r, 8).store(tile.slice(r, 8).load(rows8).to(gl.float16))

    @gluon.jit
    def _producer(k_desc, v_desc, k2_desc, v2_desc, k_bufs, v_bufs, k2_bufs, v2_bufs, ready, empty, raw,
                  batch, head, key_row0, n_first, count, skip_lo, skipped, tile_tokens,
                  BLOCK_I: gl.constexpr, BLOCK_I2: gl.constexpr, HEAD_DIM: gl.constexpr, STAGES: gl.constexpr,
                  ELEMENT_BYTES: gl.constexpr, FINAL: gl.constexpr, FP16_KEYS: gl.constexpr):  # fmt: skip
        """TMA loads of each key row into the ring. With ``FP16_KEYS`` the loads land on ``raw``; the warp turns
        the keys of the stage loaded one step earlier into float16 and only then marks it ``ready``."""
        # only the final iteration computes Y: earlier ones load the keys alone (half the ring's bytes)
        OPERANDS: gl.constexpr = 2 if FINAL else 1
        landing = raw if FP16_KEYS else ready
        for i in range(count + (1 if FP16_KEYS else 0)):
            if i < count:
                s = i % STAGES
                mbarrier.wait(empty.index(s), ((i // STAGES) & 1) ^ 1)  # a fresh ring starts empty
                t = n_first + i
                n = gl.where(t >= skip_lo, t + skipped, t)
                row = n * tile_tokens + key_row0
                mbarrier.expect(landing.index(s), OPERANDS * (BLOCK_I + BLOCK_I2) * HEAD_DIM * ELEMENT_BYTES)
                tma.async_copy_global_to_shared(k_desc, [batch, head, row, 0], landing.index(s), k_bufs.index(s))
                if FINAL:
                    tma.async_copy_global_to_shared(v_desc, [batch, head, row, 0], landing.index(s), v_bufs.index(s))
                if BLOCK_I2 > 0:
                    second = row + BLOCK_I
                    tma.async_copy_global_to_shared(k2_desc, [batch, head, second, 0], landing.index(s),
                                                    k2_bufs.index(s))  # fmt: skip
                    if FINAL:
                        tma.async_copy_global_to_shared(v2_desc, [batch, head, second, 0], landing.index(s),
                                                        v2_bufs.index(s))  # fmt: skip
            if FP16_KEYS:
                if i > 0:  # the previous stage: its loads were issued a step ago, this one's are in flight
                    j = i - 1
                    sj = j % STAGES
                    mbarrier.wait(raw.index(sj), (j // STAGES) & 1)
                    _keys_to_fp16(k_bufs, sj, BLOCK_I, HEAD_DIM)
                    if BLOCK_I2 > 0:
                        _keys_to_fp16(k2_bufs, sj, BLOCK_I2, HEAD_DIM)
                    fence_async_shared()  # the products read these keys through the async proxy
                    gl.thread_barrier()
                    mbarrier.arrive(ready.index(sj))

    @gluon.jit
    def _hi_lo(x, dtype: gl.constexpr):
        """x (float32) as two terms of ``dtype``: 16 mantissa bits for bfloat16, 22 for float16."""
        hi = x.to(dtype)
        return hi, (x - hi.to(gl.float32)).to(dtype)

    @gluon.jit
    def _logits(q_smem, k_tile, cols_first, b2, qk_scale, BLOCK_P: gl.constexpr, BLOCK: gl.constexpr):
        """Scaled log2 logits of the pairs against ``BLOCK`` key columns; padding columns get a finite
        large negative logit (p exactly 0, p * z stays 0)."""
        layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                         instr_shape=[16, BLOCK, 16])  # fmt: skip
        z = warpgroup_mma(q_smem, k_tile.permute((1, 0)), gl.zeros([BLOCK_P, BLOCK], gl.float32, layout),
                          use_acc=False)  # fmt: skip
        cols = cols_first + gl.arange(0, BLOCK, layout=gl.SliceLayout(0, layout))
        return z * qk_scale + gl.where(cols < b2, 0.0, PADDING_LOGIT)[None, :]

    @gluon.jit
    def _store_rows(base, x, staging, row_base, row_stride, rows_left, HEAD_DIM: gl.constexpr):
        """A consumer's 64 x ``HEAD_DIM`` block into aL or Y scratch with plain 16-byte stores (row r at
        ``row_base + r * row_stride``): through ``staging`` in shared memory, then 16 rows at a time, a warp
        writing whole rows (the whole block at once in registers spilled at 80 columns)."""
        THREADS_D: gl.constexpr = HEAD_DIM // 8
        rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [32 // THREADS_D, THREADS_D], [4, 1], [1, 0])
        rows = gl.arange(0, 16, layout=gl.SliceLayout(1, rows_layout))
        d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, rows_layout))
        block = staging.reshape([64, HEAD_DIM])
        block.store(x)
        gl.thread_barrier()
        for r in gl.static_range(0, 64, 16):
            offsets = row_base + (r + rows).to(gl.int64)[:, None] * row_stride + d[None, :]
            gl.store(base + offsets, block.slice(r, 16).load(rows_layout), mask=(r + rows < rows_left)[:, None])
        gl.thread_barrier()  # every row read: the next block may overwrite the staging buffer

    @gluon.jit
    def _scratch_rows(base, rows, d, mask):
        """Rows ``rows`` (D wide) of an aR-layout scratch, zero where not ``mask``."""
        return gl.load(base + rows[:, None] * d.shape[0] + d[None, :], mask=mask, other=0.0)

    @gluon.jit
    def _consumer(Q, AR, CL, AL, YS, al_desc, y_desc, k_bufs, v_bufs, k2_bufs, v2_bufs, ready, empty, q_smem,
                  al_smem, y_smem, g, batch, head, pair0, k, n_first, count, skip_lo, skipped, stride_qb, stride_qh,
                  stride_qn, query_tile_first, pairs_total, b1, b2, nk, tile_tokens, qk_scale,
                  HEAD_DIM: gl.constexpr, BLOCK_I: gl.constexpr, BLOCK_I2: gl.constexpr, STAGES: gl.constexpr,
                  FIRST: gl.constexpr, FINAL: gl.constexpr, FP16_KEYS: gl.constexpr,
                  PLAIN_STORES: gl.constexpr):  # fmt: skip
        if pair0 >= pairs_total:  # no pair of this warpgroup exists (a launch's last CTA): keep the ring turning
            for i in range(count):
                mbarrier.wait(ready.index(i % STAGES), (i // STAGES) & 1)
                mbarrier.arrive(empty.index(i % STAGES))
        else:
            BLOCK_P: gl.constexpr = 64
            dtype: gl.constexpr = Q.dtype.element_ty
            # with FP16_KEYS the queries and keys meet as float16, and aL takes R as one float16 term
            key_dtype: gl.constexpr = gl.float16 if FP16_KEYS else dtype
            rank4: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=4)
            rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
            mma_s: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                            instr_shape=[16, BLOCK_I, 16])  # fmt: skip
            mma_o: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                            instr_shape=[16, HEAD_DIM, 16])  # fmt: skip
            r_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma_o, k_width=2)
            mma_s2: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                             instr_shape=[16, max(BLOCK_I2, 16), 16])  # fmt: skip
            row_stats: gl.constexpr = gl.SliceLayout(1, mma_s)
            row_stats2: gl.constexpr = gl.SliceLayout(1, mma_s2)

            pairs = pair0 + gl.arange(0, BLOCK_P, layout=gl.SliceLayout(1, rows_layout))
            d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, rows_layout))
            pairs_ok = (pairs < pairs_total)[:, None]
            if FIRST:  # L = identity: each pair's query is row k of its own query tile, loaded once
                token = (query_tile_first + pairs // b2) * tile_tokens + k * b2 + pairs % b2
                q_base = Q + batch.to(gl.int64) * stride_qb + head.to(gl.int64) * stride_qh
                q = gl.load(q_base + token.to(gl.int64)[:, None] * stride_qn + d[None, :], mask=pairs_ok, other=0.0)
                q_smem.store(q.to(key_dtype))
                fence_async_shared()
            else:  # later iterations: aR of (pair, key tile n, row k) in the input dtype, refine's layout
                gl.static_assert(AR.dtype.element_ty == dtype, "aR must come in the input dtype")
                ar_pair = g.to(gl.int64) * pairs_total * nk + (pairs // b2).to(gl.int64) * nk * b2 + pairs % b2
                # the next key row's queries are loaded while this one computes (they are not TMA boxes)
                n0 = gl.where(n_first >= skip_lo, n_first + skipped, n_first)
                ar_next = _scratch_rows(AR, ar_pair + (n0 * b1 + k) * b2, d, pairs_ok & (count > 0))

            out_pairs = pair0 + gl.arange(0, BLOCK_P, layout=row_stats)
            if FINAL:  # key-row major for stage 2: this key row's cL of 64 adjacent pairs is one 256-byte run
                cl_rows = (g.to(gl.int64) * nk + k) * pairs_total + out_pairs
            else:  # pair-major for the refine, which reads one column's cL at a time
                cl_rows = (g.to(gl.int64) * pairs_total + out_pairs) * nk + k
            zero_o = gl.zeros([BLOCK_P, HEAD_DIM], gl.float32, mma_o)
            # plain stores: aL / Y of pair0 at key row 0, a pair's key rows apart, pairs of this warpgroup
            row_base = (g.to(gl.int64) * pairs_total + pair0) * nk * HEAD_DIM
            row_stride = nk * HEAD_DIM
            rows_left = pairs_total - pair0
            for i in range(count):
                s = i % STAGES
                t = n_first + i
                n = gl.where(t >= skip_lo, t + skipped, t)
                if not FIRST:
                    q_smem.store(ar_next.to(key_dtype))
                    n1 = gl.where(t + 1 >= skip_lo, t + 1 + skipped, t + 1)
                    ar_next = _scratch_rows(AR, ar_pair + (n1 * b1 + k) * b2, d, pairs_ok & (i + 1 < count))
                    fence_async_shared()
                mbarrier.wait(ready.index(s), (i // STAGES) & 1)
                keys = k_bufs.index(s)._reinterpret(key_dtype, [1, 1, BLOCK_I, HEAD_DIM], rank4).reshape([BLOCK_I, HEAD_DIM])
                z = _logits(q_smem, keys, 0, b2, qk_scale, BLOCK_P, BLOCK_I)
                m_i = gl.max(z, axis=1)
                if BLOCK_I2 > 0:  # 80 columns as 64 + 16: both blocks meet in one softmax
                    keys2 = k2_bufs.index(s)._reinterpret(key_dtype, [1, 1, BLOCK_I2, HEAD_DIM], rank4).reshape(
                        [BLOCK_I2, HEAD_DIM])  # fmt: skip
                    z2 = _logits(q_smem, keys2, BLOCK_I, b2, qk_scale, BLOCK_P, BLOCK_I2)
                    m_i = gl.maximum(m_i, gl.convert_layout(gl.max(z2, axis=1), row_stats))
                p = gl.exp2(z - m_i[:, None])
                l_i = gl.sum(p, axis=1)
                pz_i = gl.sum(p * z, axis=1)
                if BLOCK_I2 > 0:
                    p2 = gl.exp2(z2 - gl.convert_layout(m_i, row_stats2)[:, None])
                    l_i += gl.convert_layout(gl.sum(p2, axis=1), row_stats)
                    pz_i += gl.convert_layout(gl.sum(p2 * z2, axis=1), row_stats)
                r = p / l_i[:, None]
                if FP16_KEYS:  # one float16 term of R (11 bits) against float16 keys
                    acc = warpgroup_mma(gl.convert_layout(r.to(gl.float16), r_layout), keys, zero_o, use_acc=False)
                    if FINAL:
                        r_hi = gl.convert_layout(r.to(dtype), r_layout)  # Y's term, against the input's values
                else:
                    r_hi, r_lo = _hi_lo(r, dtype)
                    r_hi = gl.convert_layout(r_hi, r_layout)
                    acc = warpgroup_mma(r_hi, keys, zero_o, use_acc=False)
                    acc = warpgroup_mma(gl.convert_layout(r_lo, r_layout), keys, acc)
                if BLOCK_I2 > 0:
                    r2 = p2 / gl.convert_layout(l_i, row_stats2)[:, None]
                    if FP16_KEYS:
                        acc = warpgroup_mma(gl.convert_layout(r2.to(gl.float16), r_layout), keys2, acc)
                        if FINAL:
                            r2_hi = gl.convert_layout(r2.to(dtype), r_layout)
                    else:
                        r2_hi, r2_lo = _hi_lo(r2, dtype)
                        r2_hi = gl.convert_layout(r2_hi, r_layout)
                        acc = warpgroup_mma(r2_hi, keys2, acc)
                        acc = warpgroup_mma(gl.convert_layout(r2_lo, r_layout), keys2, acc)
                if not FINAL:
                    mbarrier.arrive(empty.index(s))  # the products are complete: the stage may be refilled
                # aL leaves while Y is computed, Y while the next key row is. TMA stores wait only for their own
                # staging buffer (store groups complete in order: aL of row i, then Y of row i); plain stores
                # wait for none once they have read the buffer back
                column = (n * b1 + k) * HEAD_DIM
                if PLAIN_STORES:
                    _store_rows(AL, acc.to(al_desc.dtype), al_smem, row_base + column, row_stride, rows_left, HEAD_DIM)
                else:
                    tma.store_wait(1 if FINAL else 0)  # the previous row's aL store has read its buffer
                    al_smem.reshape([BLOCK_P, HEAD_DIM]).store(acc.to(al_desc.dtype))
                    fence_async_shared()
                    tma.async_copy_shared_to_global(al_desc, [g, pair0, column], al_smem)
                if FINAL:  # Y feeds the output linearly: one term of R is enough (relative L2 of Y 1.7e-3)
                    y = warpgroup_mma(r_hi, v_bufs.index(s).reshape([BLOCK_I, HEAD_DIM]), zero_o, use_acc=False)
                    if BLOCK_I2 > 0:
                        y = warpgroup_mma(r2_hi, v2_bufs.index(s).reshape([BLOCK_I2, HEAD_DIM]), y)
                    mbarrier.arrive(empty.index(s))
                    if PLAIN_STORES:
                        _store_rows(YS, y.to(y_desc.dtype), y_smem, row_base + column, row_stride, rows_left, HEAD_DIM)
                    else:
                        tma.store_wait(1)  # the previous row's Y store has read its buffer (this row's aL may not)
                        y_smem.reshape([BLOCK_P, HEAD_DIM]).store(y.to(y_desc.dtype))
                        fence_async_shared()
                        tma.async_copy_shared_to_global(y_desc, [g, pair0, column], y_smem)
                cl_row = cl_rows + (n * b1).to(gl.int64) * (pairs_total if FINAL else 1)
                gl.store(CL + cl_row, pz_i / l_i - m_i - gl.log2(l_i), mask=out_pairs < pairs_total)
            tma.store_wait(0)

    @gluon.jit
    def _second_consumer(Q, AR, CL, AL, YS, al_desc, y_desc, k_bufs, v_bufs, k2_bufs, v2_bufs, ready, empty, q_smem,
                         al_smem, y_smem, g, batch, head, pair0, k, n_first, count, skip_lo, skipped,
                         stride_qb, stride_qh, stride_qn, query_tile_first, pairs_total, b1, b2, nk, tile_tokens,
                         qk_scale, HEAD_DIM: gl.constexpr, BLOCK_I: gl.constexpr, BLOCK_I2: gl.constexpr,
                         STAGES: gl.constexpr, FIRST: gl.constexpr, FINAL: gl.constexpr,
                         FP16_KEYS: gl.constexpr, PLAIN_STORES: gl.constexpr):  # fmt: skip
        """The worker partition's consumer: the next 64 pairs."""
        _consumer(Q, AR, CL, AL, YS, al_desc, y_desc, k_bufs, v_bufs, k2_bufs, v2_bufs, ready, empty, q_smem,
                  al_smem, y_smem, g, batch, head, pair0 + 64, k, n_first, count, skip_lo, skipped, stride_qb,
                  stride_qh, stride_qn, query_tile_first, pairs_total, b1, b2, nk, tile_tokens, qk_scale,
                  HEAD_DIM, BLOCK_I, BLOCK_I2, STAGES, FIRST, FINAL, FP16_KEYS, PLAIN_STORES)  # fmt: skip

    @gluon.jit
    def gluon_stage1_kernel(
        Q, AR, CL, AL, YS, k_desc, v_desc, k2_desc, v2_desc, al_desc, y_desc,
        stride_qb, stride_qh, stride_qn, heads, query_tile_first, pairs_total, key_tiles, b1, b2,
        query_group_offset, exact_local, qk_scale,
        HEAD_DIM: gl.constexpr, BLOCK_I: gl.constexpr, BLOCK_I2: gl.constexpr, TILES: gl.constexpr,
        STAGES: gl.constexpr, HAS_LOCAL: gl.constexpr, FIRST: gl.constexpr, FINAL: gl.constexpr,
        FP16_KEYS: gl.constexpr = False, PLAIN_STORES: gl.constexpr = False,
    ):  # fmt: skip
        """Grid: (cdiv(pairs, 128), cdiv(key_tiles, TILES) * b1, batch * heads)."""
        pid_p = gl.program_id(0)
        pid_nk = gl.program_id(1)
        g = gl.program_id(2)
        k = pid_nk % b1
        n_first = (pid_nk // b1) * TILES
        pair0 = pid_p * 128
        skip_lo, skipped, count = _tile_list(
            pair0, pairs_total, b2, key_tiles, n_first, query_tile_first, query_group_offset, exact_local,
            TILES, 128, HAS_LOCAL,
        )  # fmt: skip
        batch = g // heads
        head = g % heads
        tile_tokens = b1 * b2
        nk = key_tiles * b1
        dtype: gl.constexpr = Q.dtype.element_ty
        rank2: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
        rank3: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=3)
        rank4: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=4)
        SECOND: gl.constexpr = BLOCK_I2 if BLOCK_I2 > 0 else 16  # allocated, not used, without a second block
        VALUE_STAGES: gl.constexpr = STAGES if FINAL else 1  # earlier iterations never load values or store Y
        k_bufs = gl.allocate_shared_memory(dtype, [STAGES, 1, 1, BLOCK_I, HEAD_DIM], rank4)
        v_bufs = gl.allocate_shared_memory(dtype, [VALUE_STAGES, 1, 1, BLOCK_I, HEAD_DIM], rank4)
        k2_bufs = gl.allocate_shared_memory(dtype, [STAGES, 1, 1, SECOND, HEAD_DIM], rank4)
        v2_bufs = gl.allocate_shared_memory(dtype, [VALUE_STAGES, 1, 1, SECOND, HEAD_DIM], rank4)
        ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
        raw = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())  # FP16_KEYS: TMA lands
        for s in gl.static_range(STAGES):
            mbarrier.init(ready.index(s), count=1)
            mbarrier.init(raw.index(s), count=1)
            mbarrier.init(empty.index(s), count=2)  # one arrival per consumer
        key_dtype: gl.constexpr = gl.float16 if FP16_KEYS else dtype
        q_first = gl.allocate_shared_memory(key_dtype, [64, HEAD_DIM], rank2)
        q_second = gl.allocate_shared_memory(key_dtype, [64, HEAD_DIM], rank2)
        al_first = gl.allocate_shared_memory(al_desc.dtype, [1, 64, HEAD_DIM], rank3)
        al_second = gl.allocate_shared_memory(al_desc.dtype, [1, 64, HEAD_DIM], rank3)
        Y_ROWS: gl.constexpr = 64 if FINAL else 8
        y_first = gl.allocate_shared_memory(y_desc.dtype, [1, Y_ROWS, HEAD_DIM], rank3)
        y_second = gl.allocate_shared_memory(y_desc.dtype, [1, Y_ROWS, HEAD_DIM], rank3)
        gl.warp_specialize(
            [
                (_consumer, (Q, AR, CL, AL, YS, al_desc, y_desc, k_bufs, v_bufs, k2_bufs, v2_bufs, ready, empty, q_first,
                             al_first, y_first, g, batch, head, pair0, k, n_first, count, skip_lo,
                             skipped, stride_qb, stride_qh, stride_qn, query_tile_first, pairs_total, b1, b2, nk,
                             tile_tokens, qk_scale, HEAD_DIM, BLOCK_I, BLOCK_I2, STAGES, FIRST, FINAL, FP16_KEYS,
                             PLAIN_STORES)),
                (_second_consumer, (Q, AR, CL, AL, YS, al_desc, y_desc, k_bufs, v_bufs, k2_bufs, v2_bufs, ready, empty,
                                    q_second, al_second, y_second, g, batch, head, pair0, k, n_first,
                                    count, skip_lo, skipped, stride_qb, stride_qh, stride_qn, query_tile_first,
                                    pairs_total, b1, b2, nk, tile_tokens, qk_scale, HEAD_DIM, BLOCK_I, BLOCK_I2,
                                    STAGES, FIRST, FINAL, FP16_KEYS, PLAIN_STORES)),
                (_producer, (k_desc, v_desc, k2_desc, v2_desc, k_bufs, v_bufs, k2_bufs, v2_bufs, ready, empty, raw,
                             batch, head, k * b2, n_first, count, skip_lo, skipped, tile_tokens,
                             BLOCK_I, BLOCK_I2, HEAD_DIM, STAGES, 2, FINAL, FP16_KEYS)),
            ],
            [4, 1],
            [232, 56 if FP16_KEYS else 40],  # the producer converting keys holds 16 of them per thread
        )  # fmt: skip



def _key_descriptor(x: Tensor, rows: int) -> TensorDescriptor:
    """[B, H, N, D] keys or values (any strides TMA takes), boxes of ``rows`` tokens of one head."""
    return TensorDescriptor(x, list(x.shape), list(x.stride()), [1, 1, rows, x.shape[-1]], shared_layout(4))


def _scratch_descriptor(x: Tensor) -> TensorDescriptor:
    """aL or Y scratch ``[G, tiles, b2, key_rows, D]`` seen as [G, pairs, key_rows * D]: boxes of 64 pairs
    of one key row; TMA clips the pairs past the end of each head."""
    g, tiles, b2, key_rows, d = x.shape
    shape = [g, tiles * b2, key_rows * d]
    return TensorDescriptor(x, shape, [shape[1] * shape[2], shape[2], 1], [1, 64, d], shared_layout(3))




def stages_that_fit(first: int, second: int, head_dim: int, wanted: int, final: bool = True) -> int:
    """The deepest TMA ring up to ``wanted`` that fits beside the queries and the aL/Y staging buffers
    (16-bit: 100 columns as 64 + 64 take 2 stages, 80 as 64 + 16 take 3; earlier iterations hold no values
    and no Y, so twice as many)."""
    operands = 2 if final else 1
    per_stage = operands * (first + max(second, 16)) * head_dim * 2
    fixed = (2 + 2 * operands) * PAIRS_PER_CONSUMER * head_dim * 2  # two consumers' queries, aL (and Y)
    return max(1, min(wanted, (SHARED_MEMORY_BYTES - fixed) // per_stage))


def launcher(q: Tensor, layout, query_tile_first: int, tiles: int, exact_local: int, qk_scale: float, config: dict,
             *, first_iteration: bool, final: bool):  # fmt: skip
    """Stage 1 of query tiles ``[query_tile_first, + tiles)``, with grid, scalars and block sizes fixed
    once per call shape (few-step samplers pay host time per attention call). The returned function
    takes the call's tensors ``(q, k, v, aR, aL, Y, cL)`` and writes ``aL, Y, cL`` in the
    ``triton_stage1`` layout; later iterations read their queries from ``aR`` (``triton_stage2.refine``'s)."""
    batch, heads, _, head_dim = q.shape
    first, second = column_blocks(layout.b2)
    pairs = tiles * layout.b2
    kernel = gluon_stage1_kernel[(-(-pairs // 128), -(-layout.key_tiles // config["TILES"]) * layout.b1, batch * heads)]
    scalars = (
        q.stride(0), q.stride(1), q.stride(2), heads, query_tile_first, pairs, layout.key_tiles, layout.b1, layout.b2,
        layout.query_group_offset, max(exact_local, 0), qk_scale,
    )  # fmt: skip
    # earlier iterations' stages hold keys alone: twice as many of them keep as many bytes in flight
    blocks = dict(
        HEAD_DIM=head_dim, BLOCK_I=first, BLOCK_I2=second, TILES=config["TILES"],
        STAGES=stages_that_fit(first, second, head_dim, config["STAGES"] * (1 if final else 2), final),
        HAS_LOCAL=exact_local >= 0, FIRST=first_iteration, FINAL=final, num_warps=4,
    )  # fmt: skip
    # float16 inputs need no conversion; the producer converts a stage one step after loading it, so the ring
    # must hold two (every ring that fits holds at least two: stages_that_fit)
    if config.get("FP16_KEYS") and q.dtype == torch.bfloat16 and blocks["STAGES"] >= 2:
        blocks["FP16_KEYS"] = True
    if config.get("PLAIN_STORES"):
        blocks["PLAIN_STORES"] = True
    second_rows = max(second, 16)  # a descriptor is passed (and not read) without a second block

    def launch(q: Tensor, k: Tensor, v: Tensor, aR: Tensor, aL: Tensor, Y: Tensor, cL: Tensor) -> None:
        kernel(
            q, aR, cL, aL, Y, _key_descriptor(k, first), _key_descriptor(v, first),
            _key_descriptor(k, second_rows), _key_descriptor(v, second_rows),
            _scratch_descriptor(aL), _scratch_descriptor(Y), *scalars, **blocks,
        )  # fmt: skip

    return launch
