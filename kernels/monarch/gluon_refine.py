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

Serves whole-frame tiles (the Gluon stage 1's case), 16-bit inputs, head dim 64 or 128, b1 <= 64, on
sm_90; exact local tiles are masked (their aR rows are written, finite, and never read).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

try:  # Triton's experimental Gluon (3.5+); without it this kernel is simply not a candidate
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared,
        mbarrier,
        tma,
        warpgroup_mma,
    )
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    HAS_GLUON = True
except ImportError:  # pragma: no cover - depends on the installed Triton
    HAS_GLUON = False

BLOCK_C = 64
"""Summary keys per block (one TMA box, one wgmma M)."""
BLOCK_L = 64
"""Query rows of a column, padded (wgmma N of the logits, K of the aR product)."""
SHARED_MEMORY_BYTES = 232448 - 2048
"""sm_90's shared memory per block, less room for the barriers and the compiler's reduction scratch."""

CANDIDATES = [{"impl": "gluon"}]


@functools.cache
def _device_ok(index: int) -> bool:
    return torch.cuda.get_device_capability(index) == (9, 0)


def buffers_that_fit(head_dim: int) -> int:
    """aL block slots beside the column's queries: 13 at head dim 128, 26 at 64."""
    block = BLOCK_C * head_dim * 2
    return (SHARED_MEMORY_BYTES - BLOCK_L * head_dim * 2) // block


def serves(q: Tensor, layout) -> bool:
    """Hopper, Gluon present, whole-frame tiles, 16-bit inputs, head dim 64/128, at most 64 rows per tile,
    and a column of at most twice the slots (the evicted blocks must fit in the slots pass 2 frees)."""
    if not (HAS_GLUON and q.is_cuda and _device_ok(q.device.index or 0)):
        return False
    if layout.h_split != 1 or layout.w_split != 1 or layout.b1 > BLOCK_L:
        return False
    if q.dtype not in (torch.float16, torch.bfloat16) or q.shape[-1] not in (64, 128):
        return False
    blocks = -(-layout.key_tiles * layout.b1 // BLOCK_C)
    return blocks <= 2 * buffers_that_fit(q.shape[-1])


if HAS_GLUON:
    FINITE_FLOOR = gl.constexpr(-1.0e30)

    @gluon.jit
    def _issue_load(al_desc, bufs, loaded, slot, column, block, BLOCK_C: gl.constexpr, HEAD_DIM: gl.constexpr):
        mbarrier.expect(loaded.index(slot), BLOCK_C * HEAD_DIM * 2)
        tma.async_copy_global_to_shared(al_desc, [column, block * BLOCK_C, 0], loaded.index(slot), bufs.index(slot))

    @gluon.jit
    def _refine_half(Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, g, m, j,
                     flat_column, blocks, evicted, query_tile_first, query_tiles, key_tiles, b1, query_group_offset,
                     exact_local, qk_scale, HEAD_DIM: gl.constexpr, BUFFERS: gl.constexpr, HAS_LOCAL: gl.constexpr,
                     HALF: gl.constexpr):  # fmt: skip
        """One warpgroup's share of a column: the blocks of parity ``HALF`` in both passes. ``stats``: the
        (max, sum) of each half's pass 1, four vectors."""
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
        cl_base = flat_column.to(gl.int64) * nk

        lo = 0
        hi = 0
        if HAS_LOCAL:  # summary keys of the key tiles attended exactly: no Monarch mass
            group = query_group_offset + query_tile_first + m
            lo = gl.maximum(group - exact_local, 0) * b1
            hi = gl.minimum(group + exact_local + 1, key_tiles) * b1
        # the (max, sum) of this half's blocks; the exact local part seeds the first half's
        if HAS_LOCAL:
            seeded = l_valid & (HALF == 0)
            m_l = gl.load(LOCAL_LSE + flat_column * b1 + ls, mask=seeded, other=FINITE_FLOOR)
            sum_l = gl.where(seeded, 1.0, 0.0)
        else:
            m_l = gl.full([BLOCK_L], FINITE_FLOOR, gl.float32, row_layout)
            sum_l = gl.zeros([BLOCK_L], gl.float32, row_layout)

        # pass 1: blocks [0, evicted) give their slot to blocks BUFFERS.. once read
        for block in range(HALF, blocks, 2):
            slot = gl.where(block < BUFFERS, block, block - BUFFERS)
            mbarrier.wait(loaded.index(slot), gl.where(block < BUFFERS, 0, 1))
            al = bufs.index(slot).reshape([BLOCK_C, HEAD_DIM])
            s = warpgroup_mma(q_smem, al.permute((1, 0)), gl.zeros([BLOCK_L, BLOCK_C], gl.float32, mma_r),
                              use_acc=False)  # fmt: skip
            c = block * BLOCK_C + gl.arange(0, BLOCK_C, layout=gl.SliceLayout(0, mma_r))
            cl = gl.load(CL + cl_base + c, mask=c < nk, other=0.0)
            keep = (c < nk) & ((c < lo) | (c >= hi))
            s = gl.where(keep[None, :], s * qk_scale - cl[None, :], float("-inf"))
            m_new = gl.maximum(m_l, gl.max(s, axis=1))
            sum_l = sum_l * gl.exp2(m_l - m_new) + gl.sum(gl.exp2(s - m_new[:, None]), axis=1)
            m_l = m_new
            if block < evicted:  # done with it: its slot takes block BUFFERS + block
                _issue_load(al_desc, bufs, loaded, slot, flat_column, BUFFERS + block, BLOCK_C, HEAD_DIM)

        # the two halves meet: each leaves its (max, sum) in shared memory and reads the other's
        stats[2 * HALF].store(m_l)
        stats[2 * HALF + 1].store(sum_l)
        gl.thread_barrier()
        mbarrier.arrive(stats_ready)
        mbarrier.wait(stats_ready, 0)
        m_other = stats[2 - 2 * HALF].load(row_layout)
        sum_other = stats[3 - 2 * HALF].load(row_layout)
        m_all = gl.maximum(m_l, m_other)
        sum_all = sum_l * gl.exp2(m_l - m_all) + sum_other * gl.exp2(m_other - m_all)
        lse = gl.where(l_valid, m_all + gl.log2(sum_all), float("inf"))  # rows past b1 get weight 0
        lse = gl.convert_layout(lse, l_layout)  # pass 2 takes the logits as [c, l]

        # pass 2, in steps i: the resident blocks from the last one (pass 1 waited for them), then the
        # evicted ones; step i < evicted refills its slot (evicted - 1 - i) with evicted block i, which
        # step resident + i reads as that slot's third load. This half takes the steps of its parity.
        ar_row = g * query_tiles + m  # aR viewed as [G * tiles, nk, b2 * D]
        resident = blocks - evicted
        for i in range(HALF, blocks, 2):
            if i < resident:
                block = blocks - 1 - i
                slot = gl.where(block < BUFFERS, block, block - BUFFERS)
            else:
                block = i - resident
                slot = evicted - 1 - block
                mbarrier.wait(loaded.index(slot), 0)
            al = bufs.index(slot).reshape([BLOCK_C, HEAD_DIM])
            s = warpgroup_mma(al, q_smem.permute((1, 0)), gl.zeros([BLOCK_C, BLOCK_L], gl.float32, mma_s),
                              use_acc=False)  # fmt: skip
            c = block * BLOCK_C + gl.arange(0, BLOCK_C, layout=c_layout)
            cl = gl.load(CL + cl_base + c, mask=c < nk, other=0.0)
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
            if i < evicted:  # evicted block i comes back into this slot once the store has read it
                tma.store_wait(0)
                _issue_load(al_desc, bufs, loaded, slot, flat_column, i, BLOCK_C, HEAD_DIM)
        tma.store_wait(0)

    @gluon.jit
    def _second_half(Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, g, m, j,
                     flat_column, blocks, evicted, query_tile_first, query_tiles, key_tiles, b1, query_group_offset,
                     exact_local, qk_scale, HEAD_DIM: gl.constexpr, BUFFERS: gl.constexpr,
                     HAS_LOCAL: gl.constexpr):  # fmt: skip
        """The worker partition: the odd blocks and steps."""
        _refine_half(Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, g, m, j,
                     flat_column, blocks, evicted, query_tile_first, query_tiles, key_tiles, b1, query_group_offset,
                     exact_local, qk_scale, HEAD_DIM, BUFFERS, HAS_LOCAL, 1)  # fmt: skip

    @gluon.jit
    def _first_half(Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, g, m, j,
                    flat_column, blocks, evicted, query_tile_first, query_tiles, key_tiles, b1, query_group_offset,
                    exact_local, qk_scale, HEAD_DIM: gl.constexpr, BUFFERS: gl.constexpr,
                    HAS_LOCAL: gl.constexpr):  # fmt: skip
        """The default partition: the even blocks and steps."""
        _refine_half(Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, g, m, j,
                     flat_column, blocks, evicted, query_tile_first, query_tiles, key_tiles, b1, query_group_offset,
                     exact_local, qk_scale, HEAD_DIM, BUFFERS, HAS_LOCAL, 0)  # fmt: skip

    @gluon.jit
    def gluon_refine_kernel(
        Q, CL, LOCAL_LSE, al_desc, ar_desc,
        stride_qb, stride_qh, stride_qn, heads, query_tile_first, query_tiles, key_tiles, b1, b2,
        query_group_offset, exact_local, qk_scale,
        HEAD_DIM: gl.constexpr, BUFFERS: gl.constexpr, HAS_LOCAL: gl.constexpr,
    ):  # fmt: skip
        """Grid: (query columns of the chunk, batch * heads); two warpgroups, each half of the blocks."""
        BLOCK_C: gl.constexpr = 64
        BLOCK_L: gl.constexpr = 64
        column_in_chunk = gl.program_id(0)
        g = gl.program_id(1)
        m = column_in_chunk // b2
        j = column_in_chunk % b2
        nk = key_tiles * b1
        blocks = (nk + BLOCK_C - 1) // BLOCK_C
        evicted = gl.maximum(blocks - BUFFERS, 0)  # blocks [0, evicted) lose their slot to the last ones
        flat_column = (g * query_tiles + m) * b2 + j
        dtype: gl.constexpr = al_desc.dtype

        rank2: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
        rank3: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=3)
        bufs = gl.allocate_shared_memory(dtype, [BUFFERS, 1, BLOCK_C, HEAD_DIM], rank3)
        loaded = gl.allocate_shared_memory(gl.int64, [BUFFERS, 1], mbarrier.MBarrierLayout())
        for x in gl.static_range(BUFFERS):
            mbarrier.init(loaded.index(x), count=1)
        stats_ready = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
        mbarrier.init(stats_ready, count=2)  # one arrival per half
        # every block that has a slot is requested at once: the column's reads are all in flight
        for b in range(gl.minimum(blocks, BUFFERS)):
            _issue_load(al_desc, bufs, loaded, b, flat_column, b, BLOCK_C, HEAD_DIM)

        # the column's queries (rows l of tile m, column j), zero past b1
        rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
        rows = gl.arange(0, BLOCK_L, layout=gl.SliceLayout(1, rows_layout))
        d = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, rows_layout))
        batch = g // heads
        head = g % heads
        token = (query_tile_first + m) * b1 * b2 + rows * b2 + j
        q_base = Q + batch.to(gl.int64) * stride_qb + head.to(gl.int64) * stride_qh
        q = gl.load(q_base + token.to(gl.int64)[:, None] * stride_qn + d[None, :], mask=(rows < b1)[:, None],
                    other=0.0).to(dtype)  # fmt: skip
        q_smem = gl.allocate_shared_memory(dtype, [BLOCK_L, HEAD_DIM], rank2)
        q_smem.store(q)
        vector: gl.constexpr = gl.SwizzledSharedLayout(1, 1, 1, [0])
        stats = (
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
            gl.allocate_shared_memory(gl.float32, [BLOCK_L], vector),
        )
        fence_async_shared()
        gl.warp_specialize(
            [
                (_first_half, (Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, g, m, j,
                               flat_column, blocks, evicted, query_tile_first, query_tiles, key_tiles, b1,
                               query_group_offset, exact_local, qk_scale, HEAD_DIM, BUFFERS, HAS_LOCAL)),
                (_second_half, (Q, CL, LOCAL_LSE, al_desc, ar_desc, bufs, loaded, q_smem, stats, stats_ready, g, m, j,
                                flat_column, blocks, evicted, query_tile_first, query_tiles, key_tiles, b1,
                                query_group_offset, exact_local, qk_scale, HEAD_DIM, BUFFERS, HAS_LOCAL)),
            ],
            [4],
            [192],
        )  # fmt: skip


@functools.cache
def _shared_layout(rank: int):
    return gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=rank)


def launcher(q: Tensor, layout, query_tile_first: int, tiles: int, exact_local: int, qk_scale: float):
    """Refine of query tiles ``[query_tile_first, + tiles)``, planned once per call shape. The returned
    function takes ``(q, aL, cL, local_lse, aR)`` in ``triton_monarch``'s scratch layouts."""
    batch, heads, _, head_dim = q.shape
    kernel = gluon_refine_kernel[(tiles * layout.b2, batch * heads)]
    scalars = (
        q.stride(0), q.stride(1), q.stride(2), heads, query_tile_first, tiles, layout.key_tiles, layout.b1,
        layout.b2, layout.query_group_offset, max(exact_local, 0), qk_scale,
    )  # fmt: skip
    blocks = dict(HEAD_DIM=head_dim, BUFFERS=buffers_that_fit(head_dim), HAS_LOCAL=exact_local >= 0, num_warps=4)

    def launch(q: Tensor, aL: Tensor, cL: Tensor, local_lse: Tensor, aR: Tensor) -> None:
        g, chunk_tiles, b2, nk, d = aL.shape
        al_desc = TensorDescriptor(aL, [g * chunk_tiles * b2, nk, d], [nk * d, d, 1], [1, BLOCK_C, d],
                                   _shared_layout(3))  # fmt: skip
        ar_desc = TensorDescriptor(aR, [g * chunk_tiles, nk, b2 * d], [nk * b2 * d, b2 * d, 1], [1, BLOCK_C, d],
                                   _shared_layout(3))  # fmt: skip
        kernel(q, cL, local_lse, al_desc, ar_desc, *scalars, **blocks)

    return launch
