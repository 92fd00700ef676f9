"""Where a tile row lives in the frame-major token sequence: the index math every Monarch kernel shares.

Meaning: ``reference.to_tiles``. A tile ``t`` is ``tile_frames`` frames x ``rows_per_frame`` rows
(``h / h_split``) x ``b2`` columns (``w / w_split``); tiles are numbered group-major, then by
h-split, then by w-split. Tile row ``r`` (frame offset ``r // rows_per_frame``, row offset
``r % rows_per_frame``) is ``b2`` *contiguous* tokens, so kernels address q, k, v in their native
``[B, H, N, D]`` layout (no gather copies, no padding copies) and every row load is contiguous.
"""

from __future__ import annotations

import triton
import triton.language as tl  # noqa: F401 - Triton requires it in the globals of every jit function

from .reference import MonarchLayout


@triton.jit
def tile_row_token(tile, row, tiles_per_group, w_split, rows_per_frame, tile_frames, height, width, b2):
    """First token of row ``row`` of tile ``tile`` (scalars or tensors, broadcast elementwise)."""
    group = tile // tiles_per_group
    within = tile % tiles_per_group
    frame = group * tile_frames + row // rows_per_frame
    grid_row = (within // w_split) * rows_per_frame + row % rows_per_frame
    return (frame * height + grid_row) * width + (within % w_split) * b2


def geometry_args(layout: MonarchLayout) -> tuple[int, ...]:
    """The arguments of :func:`tile_row_token` between ``(tile, row)`` and ``b2``, in order."""
    return (
        layout.tiles_per_group,
        layout.w_split,
        layout.height // layout.h_split,
        layout.tile_frames,
        layout.height,
        layout.width,
    )
