"""The final iteration of Monarch attention as one persistent kernel: stage 2 reads what stage 1 just wrote.

Meaning: stage 1 then stage 2 (``triton_stage1.stage1_program``, ``triton_stage2.stage2_column``),
exactly; only the order of the work differs. Two launches write aL and Y for every (head, pair)
before the first is read back, so stage 2 streams them from DRAM (bench/notes_monarch_triton.md:
89 % of its bandwidth at 480p, the largest cost left). Here the work is split into *groups*, one
(head, block of ``BLOCK_P`` (query tile, column) pairs): stage 2 of a group needs every key row of
that group's stage 1 and nothing else, 20 MB at 480p, so it can run while those bytes are in L2.

Programs take tickets from a counter; ticket order runs stage 1 of group ``g + LAG`` before stage 2
of group ``g``:

    S1(0) .. S1(LAG-1) | S1(LAG) S2(0) | S1(LAG+1) S2(1) | ... | S2(G-LAG) .. S2(G-1)

A stage-2 item spins until its group's counter says all its stage-1 items are done. It cannot
deadlock: tickets are taken in order, so every item it waits for was taken earlier by a program
that is running and never waits for a later ticket. The wait is a release/acquire pair on the
counter (stage 1: barrier, then a release add by one thread; stage 2: acquire loads, then loads
of the intermediates through L2 only, ``.cg``).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_stage1 import stage1_program
from .triton_stage2 import stage2_column

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
    "pair_blocks",
    "key_tile_blocks",
    "groups",
    "lag",
]
"""Integer arguments Triton must not specialise: one compiled kernel serves every grid and tiling."""


@triton.jit
def _ticket_item(t, s1, s2, groups, lag):
    """(is stage 1, group, index within the group's stage-1 or stage-2 items) of ticket ``t``."""
    lead = lag * s1
    cycle = s1 + s2
    u = tl.maximum(t - lead, 0)
    block = u // cycle
    r = u % cycle
    tail = u - (groups - lag) * cycle
    leading = t < lead
    steady = block + lag < groups
    first = leading | (steady & (r < s1))
    steady_group = tl.where(r < s1, block + lag, block)
    group = tl.where(leading, t // s1, tl.where(steady, steady_group, groups - lag + tail // s2))
    index = tl.where(leading, t % s1, tl.where(steady, tl.where(r < s1, r, r - s1), tail % s2))
    return first, group, index


@triton.jit(do_not_specialize=_RUNTIME_INTS)
def monarch_fused_final_kernel(
    Q,
    K,
    V,
    AR,
    AL,
    Y,
    CL,
    LOCAL_OUT,
    LOCAL_LSE,
    OUT,
    COUNTERS,
    stride_qb,
    stride_qh,
    stride_qn,
    stride_kb,
    stride_kh,
    stride_kn,
    stride_vb,
    stride_vh,
    stride_vn,
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
    pair_blocks,
    key_tile_blocks,
    groups,
    lag,
    HEAD_DIM: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_I2: tl.constexpr,
    TILES_PER_PROGRAM: tl.constexpr,
    FIRST: tl.constexpr,
    HAS_LOCAL: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    ONE_I_BLOCK: tl.constexpr,
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """``COUNTERS``: int32 ``[1 + groups]``, zero: the ticket counter, then each group's finished
    stage-1 items. A group is (head x batch ``group // pair_blocks``, pair block ``group % pair_blocks``)."""
    s1 = key_tile_blocks * b1
    s2 = BLOCK_P
    total = groups * (s1 + s2)
    columns = query_tiles * b2
    t = tl.atomic_add(COUNTERS, 1)
    while t < total:
        first, group, index = _ticket_item(t, s1, s2, groups, lag)
        g = group // pair_blocks
        pair_block = group % pair_blocks
        if first:
            stage1_program(
                pair_block, index, g,
                Q, K, V, AR, AL, Y, CL, stride_qb, stride_qh, stride_qn, stride_kb, stride_kh, stride_kn,
                stride_vb, stride_vh, stride_vn, heads, query_tile_first, query_tiles, key_tiles, b1, b2,
                tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, query_group_offset,
                exact_local, qk_scale,
                HEAD_DIM, BLOCK_P, BLOCK_I, BLOCK_I2, TILES_PER_PROGRAM, FIRST, True, HAS_LOCAL, DOT_PRECISION,
                ONE_I_BLOCK,
            )  # fmt: skip
            # every thread's stores before the count: the barrier, then a release add (one thread)
            tl.debug_barrier()
            tl.atomic_add(COUNTERS + 1 + group, 1, sem="release", scope="gpu")
        else:
            column = pair_block * BLOCK_P + index
            if column < columns:
                done = tl.atomic_add(COUNTERS + 1 + group, 0, sem="acquire", scope="gpu")
                while done < s1:
                    done = tl.atomic_add(COUNTERS + 1 + group, 0, sem="acquire", scope="gpu")
                stage2_column(
                    column, g,
                    Q, AL, Y, CL, LOCAL_OUT, LOCAL_LSE, OUT, stride_qb, stride_qh, stride_qn, stride_ob,
                    stride_oh, stride_on, heads, query_tile_first, query_tiles, key_tiles, b1, b2,
                    tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, query_group_offset,
                    key_groups, exact_local, qk_scale,
                    HEAD_DIM, BLOCK_L, BLOCK_C, HAS_LOCAL, DOT_PRECISION, ".cg",
                )  # fmt: skip
        t = tl.atomic_add(COUNTERS, 1)
