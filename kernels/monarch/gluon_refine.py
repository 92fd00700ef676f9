"""Refine (non-final iterations' stage 2) as a Hopper kernel that reads aL from DRAM about once (Gluon).

Meaning: ``triton_stage2.monarch_refine_kernel`` (``reference.aR_mean``): for one query column (m, j),
pass 1 takes the joint log-normaliser ``lse[l]`` of ``q[l] . aL[c] - cL[c]`` over every summary key
``c = (n, k)``; pass 2 writes ``aR[c] = sum_l softmax_l(q[l] . aL[c] - cL[c] - lse[l]) q[l]``.

Why a second kernel: pass 2 needs every ``aL[c]`` again after pass 1 has seen all of them, so the Triton
kernel reads aL twice from DRAM (a 720p column is 242 KB; with a few columns per SM in flight, L2 holds
too little of them). Here one CTA holds its column's aL in shared memory: TMA loads every 64-row block
at once into up to ``buffers`` slots (13 at head dim 128: 832 of 720p's 945 rows, all of 480p's 630),
pass 2 reads them back from shared memory, and aR leaves by TMA stores from the slot its aL block used.
When a column has more blocks than slots, the first ``blocks - buffers`` blocks are read first and
their slots refilled with the last blocks; pass 2 loads those first blocks again into slots it has
finished with. DRAM traffic per column: aL once (plus the evicted blocks again), aR once.

Three warpgroups share a column (every third block; they exchange their pass-1 statistics through
shared memory), and the CTAs are persistent, one per SM: a slot that pass 2 has finished
with is refilled at once with the CTA's next column, so that column's reads overlap this one's
products and aR stores (one column per CTA at a time left each SM reading, then writing).

Serves whole-frame tiles (the Gluon stage 1's case), 16-bit inputs, head dim 64 or 128, b1 <= 64, on
sm_90; exact local tiles are masked (their aR rows are written, finite, and never read).
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

BLOCK_C = 64
"""Summary keys per block (one TMA box, one wgmma M)."""
BLOCK_L = 64
"""Query rows of a column, padded (wgmma N of the logits, K of the aR product)."""

WARPGROUPS = 3
"""Parts of a CTA, each a share of every column's blocks: with one CTA per SM (its shared memory is the
SM's), a step's latency hides behind the other parts' work (H100, 720p refine: one part 27.3 ms, two 19.7)."""

CANDIDATES = [{"impl": "gluon"}]


def buffers_that_fit(head_dim: int) -> int:
    """aL block slots beside the column's queries: 13 at head dim 128, 27 at 64."""
    block = BLOCK_C * head_dim * 2
    return (SHARED_MEMORY_BYTES - BLOCK_L * head_dim * 2) // block


def serves(q: Tensor, layout) -> bool:
    """Hopper, Gluon present, whole-frame tiles, 16-bit inputs, head dim 64/128, at most 64 rows per tile,
    and a column of at most ``2 * slots - WARPGROUPS`` blocks: pass 2 refills the evicted blocks into slots
    its resident steps free, each one step of its part late (a later refill could wait on another part's)."""
    if not (HAS_GLUON and q.is_cuda and is_hopper(q.device.index or 0)):
        return False
    if layout.h_split != 1 or layout.w_split != 1 or layout.b1 > BLOCK_L:
        return False
    if q.dtype not in (torch.float16, torch.bfloat16) or q.shape[-1] not in (64, 128):
        return False
    blocks = -(-layout.key_tiles * layout.b1 // BLOCK_C)
    return blocks <= 2 * buffers_that_fit(q.shape[-1]) - WARPGROUPS


if HAS_GLUON:
    FINITE_FLOOR = gl.constexpr(-1.0e30)
    PARTS = gl.constexpr(WARPGROUPS)

    @gluon.jit
    def _issue_load(al_desc, bufs, loaded, slot, column, block, BLOCK_C: gl.constexpr, HEAD_DIM: gl.constexpr):
        mbarrier.expect(loaded.index(slot), BLOCK_C * HEAD_DIM * 2)
        tma.async_copy_global_to_shared(al_desc, [column, block * BLOCK_C, 0], loaded.index(slot), bufs.index(slot))

    @gluon.jit
    def _slot_loads(slot, evicted):
        """Loads into ``slot`` per column: an evicted block's slot takes three (the block, the block that
        replaces it in pass 1, the block again in pass 2), the others one."""
        return gl.where(slot < evicted, 3, 1)

    @gluon.jit
    def _pass2_block(i, resident, blocks):
        """Pass 2's step ``i``: the resident blocks from the last one, then the evicted ones."""
        return gl.where(i < resident, blocks - 1 - i, i - resident)

    @gluon.jit
    def _column_cl(CL, cl_base, block, nk, BLOCK_C: gl.constexpr):
        """cL of the summary keys of ``block`` (0 past the column's ``nk``), one register per thread; issued a
        block early so that its DRAM latency hides under the products (waiting on it was 25 % of the refine's
        stall samples), and moved to the products' layout when used."""
        compact: gl.constexpr = gl.BlockedLayout([1], [32], [4], [0])
        c = block * BLOCK_C + gl.arange(0, BLOCK_C, layout=compact)
        return gl.load(CL + cl_base + c, mask=(c < nk) & (block >= 0), other=0.0)

    @gluon.jit
    def _query_rows(Q, column, columns, stride_qb, stride_qh, stride_qn, heads, query_tile_first, query_tiles, b1,
                    b2, BLOCK_L: gl.constexpr, HEAD_DIM: gl.constexpr):  # fmt: skip
        """The column's queries (rows l of its tile, zero past b1; all zero past the last column) in registers."""
        rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
        rows = gl.arange(0, BLOCK_L, layout=gl.SliceLayout(1, rows_layout))
        d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, rows_layout))
        g = column // (query_tiles * b2)
        m = column % (query_tiles * b2) // b2
        j = column % b2
        token = (query_tile_first + m) * b1 * b2 + rows * b2 + j
        q_base = Q + (g // heads).to(gl.int64) * stride_qb + (g % heads).to(gl.int64) * stride_qh
        return gl.load(q_base + token.to(gl.int64)[:, None] * stride_qn + d[None, :],
                       mask=(rows < b1)[:, None] & (column < columns), other=0.0)  # fmt: skip

    @gluon.jit
    def _load_query(Q, q_smem, column, stride_qb, stride_qh, stride_qn, heads, query_tile_first, query_tiles, b1, b2,
                    BLOCK_L: gl.constexpr, HEAD_DIM: gl.constexpr):  # fmt: skip
        """The column's queries (rows l of its tile, zero past b1) into shared memory, in aL's dtype."""
        q = _query_rows(Q, column, column + 1, stride_qb, stride_qh, stride_qn, heads, query_tile_first, query_tiles,
                        b1, b2, BLOCK_L, HEAD_DIM)  # fmt: skip
        q_smem.store(q.to(q_smem.dtype))
        fence_async_shared()

    @gluon.jit
    def _refine_part(Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, column_done,
                     q_ready, stride_qb, stride_qh, stride_qn, groups, heads, query_tile_first, query_tiles, key_tiles, b1,
                     b2, query_group_offset, exact_local, qk_scale, HEAD_DIM: gl.constexpr, BUFFERS: gl.constexpr,
                     HAS_LOCAL: gl.constexpr, PART: gl.constexpr):  # fmt: skip
        """One warpgroup's share of every column of this CTA: the blocks ``PART, PART + PARTS, ...`` in both
        passes. ``stats``: the (max, sum) of each part's pass 1, two vectors per part."""
        BLOCK_C: gl.constexpr = 64
        BLOCK_L: gl.constexpr = 64
        dtype: gl.constexpr = al_desc.dtype  # aL's scratch dtype: the products take q in it too
        out_dtype: gl.constexpr = ar_desc.dtype  # aR: the input dtype
        rank3: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=3)
        mma_s: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                        instr_shape=[16, BLOCK_L, 16])  # fmt: skip
        mma_o: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                        instr_shape=[16, HEAD_DIM, 16])  # fmt: skip
        w_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=mma_o, k_width=2)
        c_layout: gl.constexpr = gl.SliceLayout(1, mma_s)
        l_layout: gl.constexpr = gl.SliceLayout(0, mma_s)
        # pass 1 takes the logits as [l, c] (rows l: its reductions over c stay within a warp)
        mma_r: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                        instr_shape=[16, BLOCK_C, 16])  # fmt: skip
        row_layout: gl.constexpr = gl.SliceLayout(1, mma_r)
        ls = gl.arange(0, BLOCK_L, layout=row_layout)
        l_valid = ls < b1
        nk = key_tiles * b1
        blocks = (nk + BLOCK_C - 1) // BLOCK_C
        evicted = gl.maximum(blocks - BUFFERS, 0)  # blocks [0, evicted) lose their slot to the last ones
        resident = blocks - evicted
        columns = groups * query_tiles * b2
        pass1_layout: gl.constexpr = gl.SliceLayout(0, mma_r)
        first_column = gl.program_id(0)
        cl_next = _column_cl(CL, first_column.to(gl.int64) * nk, gl.where(first_column < columns, PART, -1), nk,
                             BLOCK_C)  # fmt: skip
        t = 0  # columns of this CTA done
        for column in range(gl.program_id(0), columns, gl.num_programs(0)):
            m = column % (query_tiles * b2) // b2
            j = column % b2
            next_column = column + gl.num_programs(0)
            cl_base = column.to(gl.int64) * nk
            lo = 0
            hi = 0
            if HAS_LOCAL:  # summary keys of the key tiles attended exactly: no Monarch mass
                group = query_group_offset + query_tile_first + m
                lo = gl.maximum(group - exact_local, 0) * b1
                hi = gl.maximum(gl.minimum(group + exact_local + 1, key_tiles) * b1, lo)  # empty at exact_local -1
                seeded = l_valid & (PART == 0)  # the exact local part seeds the first part's statistics
                m_l = gl.load(LOCAL_LSE + column * b1 + ls, mask=seeded, other=FINITE_FLOOR)
                sum_l = gl.where(seeded, 1.0, 0.0)
            else:
                m_l = gl.full([BLOCK_L], FINITE_FLOOR, gl.float32, row_layout)
                sum_l = gl.zeros([BLOCK_L], gl.float32, row_layout)

            # pass 1: blocks [0, evicted) give their slot to blocks BUFFERS.. once read
            for block in range(PART, blocks, PARTS):
                cl = gl.convert_layout(cl_next, pass1_layout)
                cl_next = _column_cl(CL, cl_base, block + PARTS, nk, BLOCK_C)
                first_load = block < BUFFERS
                slot = gl.where(first_load, block, block - BUFFERS)
                phase = gl.where(first_load, t * _slot_loads(slot, evicted), t * 3 + 1) & 1
                mbarrier.wait(loaded.index(slot), phase)
                al = bufs.index(slot).reshape([BLOCK_C, HEAD_DIM])
                s = warpgroup_mma(q_smem, al.permute((1, 0)), gl.zeros([BLOCK_L, BLOCK_C], gl.float32, mma_r),
                                  use_acc=False)  # fmt: skip
                c = block * BLOCK_C + gl.arange(0, BLOCK_C, layout=pass1_layout)
                keep = (c < nk) & ((c < lo) | (c >= hi))
                s = gl.where(keep[None, :], s * qk_scale - cl[None, :], float("-inf"))
                m_new = gl.maximum(m_l, gl.max(s, axis=1))
                sum_l = sum_l * gl.exp2(m_l - m_new) + gl.sum(gl.exp2(s - m_new[:, None]), axis=1)
                m_l = m_new
                if block < evicted:  # done with it: its slot takes block BUFFERS + block
                    _issue_load(al_desc, bufs, loaded, slot, column, BUFFERS + block, BLOCK_C, HEAD_DIM)

            cl_next2 = _column_cl(CL, cl_base, _pass2_block(PART, resident, blocks), nk, BLOCK_C)
            if PART == 0:  # the next column's queries, in registers until every part is done with these
                q_next = _query_rows(Q, next_column, columns, stride_qb, stride_qh, stride_qn, heads, query_tile_first,
                                     query_tiles, b1, b2, BLOCK_L, HEAD_DIM)  # fmt: skip
            # the parts meet: each leaves its (max, sum) in shared memory and reads the others'
            stats[2 * PART].store(m_l)
            stats[2 * PART + 1].store(sum_l)
            gl.thread_barrier()
            mbarrier.arrive(stats_ready)
            mbarrier.wait(stats_ready, t & 1)
            m_all = m_l
            for other in gl.static_range(PARTS):
                m_all = gl.maximum(m_all, stats[2 * other].load(row_layout))
            sum_all = gl.zeros([BLOCK_L], gl.float32, row_layout)
            for other in gl.static_range(PARTS):
                m_other = stats[2 * other].load(row_layout)
                sum_all += stats[2 * other + 1].load(row_layout) * gl.exp2(m_other - m_all)
            lse = gl.where(l_valid, m_all + gl.log2(sum_all), float("inf"))  # rows past b1 get weight 0
            lse = gl.convert_layout(lse, l_layout)  # pass 2 takes the logits as [c, l]

            # pass 2, in steps i: the resident blocks from the last one, then the evicted ones; step
            # i < evicted refills its slot (evicted - 1 - i) with evicted block i, which step resident + i
            # reads as that slot's third load; a slot's last step hands it to the CTA's next column. Both
            # wait for their slot's aR store, one step late: the stores of consecutive steps overlap.
            ar_row = column // b2  # aR viewed as [G * tiles, nk, b2 * D]
            pending_slot = -1
            pending_column = column
            pending_block = 0
            for i in range(PART, blocks, PARTS):
                cl = gl.convert_layout(cl_next2, c_layout)
                after = i + PARTS
                cl_next2 = _column_cl(CL, cl_base, gl.where(after < blocks, _pass2_block(after, resident, blocks), -1),
                                      nk, BLOCK_C)  # fmt: skip
                block = _pass2_block(i, resident, blocks)
                if i < resident:
                    first_load = block < BUFFERS
                    slot = gl.where(first_load, block, block - BUFFERS)
                    phase = gl.where(first_load, t * _slot_loads(slot, evicted), t * 3 + 1) & 1
                else:
                    slot = evicted - 1 - block
                    phase = (t * 3 + 2) & 1
                mbarrier.wait(loaded.index(slot), phase)
                al = bufs.index(slot).reshape([BLOCK_C, HEAD_DIM])
                s = warpgroup_mma(al, q_smem.permute((1, 0)), gl.zeros([BLOCK_C, BLOCK_L], gl.float32, mma_s),
                                  use_acc=False)  # fmt: skip
                log_w = s * qk_scale - cl[:, None] - lse[None, :]
                w = gl.exp2(log_w - gl.max(log_w, axis=1)[:, None])
                w = w / gl.sum(w, axis=1)[:, None]
                ar = warpgroup_mma(gl.convert_layout(w.to(dtype), w_layout), q_smem,
                                   gl.zeros([BLOCK_C, HEAD_DIM], gl.float32, mma_o), use_acc=False)  # fmt: skip
                # the products have read this slot's aL: aR leaves from it (rows past nk are clipped)
                out = bufs.index(slot)._reinterpret(out_dtype, [1, BLOCK_C, HEAD_DIM], rank3)  # same 16-bit size
                out.reshape([BLOCK_C, HEAD_DIM]).store(ar.to(out_dtype))
                fence_async_shared()
                tma.async_copy_shared_to_global(ar_desc, [ar_row, block * BLOCK_C, j * HEAD_DIM], out)
                tma.store_wait(1)  # the previous step's store has read its slot
                if pending_slot >= 0:
                    _issue_load(al_desc, bufs, loaded, pending_slot, pending_column, pending_block, BLOCK_C, HEAD_DIM)
                if i < evicted:
                    pending_slot, pending_column, pending_block = slot, column, i
                elif next_column < columns:
                    pending_slot, pending_column, pending_block = slot, next_column, slot
                else:
                    pending_slot = -1
            tma.store_wait(0)
            if pending_slot >= 0:
                _issue_load(al_desc, bufs, loaded, pending_slot, pending_column, pending_block, BLOCK_C, HEAD_DIM)

            # the next column's first cL; its queries replace these once every part is done with them
            cl_next = _column_cl(CL, next_column.to(gl.int64) * nk, gl.where(next_column < columns, PART, -1), nk,
                                 BLOCK_C)  # fmt: skip
            mbarrier.arrive(column_done)
            if PART == 0:
                mbarrier.wait(column_done, t & 1)
                if next_column < columns:
                    q_smem.store(q_next.to(q_smem.dtype))
                    fence_async_shared()
                gl.thread_barrier()
                mbarrier.arrive(q_ready)
            else:
                mbarrier.wait(q_ready, t & 1)
            t += 1

    @gluon.jit
    def gluon_refine_kernel(
        Q, CL, LOCAL_LSE, al_desc, ar_desc,
        stride_qb, stride_qh, stride_qn, groups, heads, query_tile_first, query_tiles, key_tiles, b1, b2,
        query_group_offset, exact_local, qk_scale,
        HEAD_DIM: gl.constexpr, BUFFERS: gl.constexpr, HAS_LOCAL: gl.constexpr,
    ):  # fmt: skip
        """Grid: (CTAs, 1), persistent: CTA p takes the columns p, p + CTAs, ... of the chunk, flattened over
        (batch x head, query tile, column); ``PARTS`` warpgroups, each a share of the blocks of a column."""
        BLOCK_C: gl.constexpr = 64
        BLOCK_L: gl.constexpr = 64
        dtype: gl.constexpr = al_desc.dtype
        nk = key_tiles * b1
        blocks = (nk + BLOCK_C - 1) // BLOCK_C
        rank2: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
        rank3: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=3)
        bufs = gl.allocate_shared_memory(dtype, [BUFFERS, 1, BLOCK_C, HEAD_DIM], rank3)
        loaded = gl.allocate_shared_memory(gl.int64, [BUFFERS, 1], mbarrier.MBarrierLayout())
        for x in gl.static_range(BUFFERS):
            mbarrier.init(loaded.index(x), count=1)
        stats_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
        mbarrier.init(stats_ready, count=PARTS)  # one arrival per part
        column_done = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
        mbarrier.init(column_done, count=PARTS)
        q_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
        mbarrier.init(q_ready, count=1)
        q_smem = gl.allocate_shared_memory(dtype, [BLOCK_L, HEAD_DIM], rank2)
        vector: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [0])
        stats = (
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
        )  # (max, sum) of each of the PARTS parts
        first_column = gl.program_id(0)
        if first_column < groups * query_tiles * b2:
            # every block of the first column that has a slot is requested at once
            for b in range(gl.minimum(blocks, BUFFERS)):
                _issue_load(al_desc, bufs, loaded, b, first_column, b, BLOCK_C, HEAD_DIM)
            _load_query(Q, q_smem, first_column, stride_qb, stride_qh, stride_qn, heads, query_tile_first,
                        query_tiles, b1, b2, BLOCK_L, HEAD_DIM)  # fmt: skip
        gl.warp_specialize(
            [
                (_refine_part, (Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready,
                                column_done, q_ready, stride_qb, stride_qh, stride_qn, groups, heads, query_tile_first,
                                query_tiles, key_tiles, b1, b2, query_group_offset, exact_local, qk_scale, HEAD_DIM,
                                BUFFERS, HAS_LOCAL, 0)),
                (_refine_part, (Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready,
                                column_done, q_ready, stride_qb, stride_qh, stride_qn, groups, heads, query_tile_first,
                                query_tiles, key_tiles, b1, b2, query_group_offset, exact_local, qk_scale, HEAD_DIM,
                                BUFFERS, HAS_LOCAL, 1)),
                (_refine_part, (Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready,
                                column_done, q_ready, stride_qb, stride_qh, stride_qn, groups, heads, query_tile_first,
                                query_tiles, key_tiles, b1, b2, query_group_offset, exact_local, qk_scale, HEAD_DIM,
                                BUFFERS, HAS_LOCAL, 2)),
            ],
            [4, 4],
            [152, 152],
        )  # fmt: skip



def launcher(q: Tensor, layout, query_tile_first: int, tiles: int, exact_local: int, qk_scale: float,
             has_local: bool | None = None):  # fmt: skip
    """Refine of query tiles ``[query_tile_first, + tiles)``, planned once per call shape. The returned
    function takes ``(q, aL, cL, local_lse, aR)`` in ``triton_monarch``'s scratch layouts. ``has_local``
    (default: ``exact_local >= 0``): an exact part seeds the statistics (local tiles and/or extra keys)."""
    batch, heads, _, head_dim = q.shape
    columns = tiles * layout.b2 * batch * heads
    ctas = min(columns, torch.cuda.get_device_properties(q.device).multi_processor_count)
    kernel = gluon_refine_kernel[(ctas, 1)]  # persistent: one CTA per SM (its shared memory is the SM's)
    scalars = (
        q.stride(0), q.stride(1), q.stride(2), batch * heads, heads, query_tile_first, tiles, layout.key_tiles, layout.b1,
        layout.b2, layout.query_group_offset, exact_local, qk_scale,
    )  # fmt: skip
    has_local = exact_local >= 0 if has_local is None else has_local
    blocks = dict(HEAD_DIM=head_dim, BUFFERS=buffers_that_fit(head_dim), HAS_LOCAL=has_local, num_warps=4)

    def launch(q: Tensor, aL: Tensor, cL: Tensor, local_lse: Tensor, aR: Tensor) -> None:
        g, chunk_tiles, b2, nk, d = aL.shape
        al_desc = TensorDescriptor(aL, [g * chunk_tiles * b2, nk, d], [nk * d, d, 1], [1, BLOCK_C, d],
                                   shared_layout(3))  # fmt: skip
        ar_desc = TensorDescriptor(aR, [g * chunk_tiles, nk, b2 * d], [nk * b2 * d, b2 * d, 1], [1, BLOCK_C, d],
                                   shared_layout(3))  # fmt: skip
        kernel(q, cL, local_lse, al_desc, ar_desc, *scalars, **blocks)

    return launch
