"""The Gluon stage 1's host-side planning (no GPU): key-column boxes, the TMA ring that fits shared
memory, and where the kernel is not offered."""

from __future__ import annotations

import pytest
import torch

from rtv.kernels.monarch import gluon_stage1, monarch_layout


@pytest.mark.parametrize(
    "columns, blocks",
    [(10, (16, 0)), (52, (64, 0)), (64, (64, 0)), (80, (64, 16)), (96, (64, 32)), (100, (64, 64)), (128, (64, 64))],
)
def test_key_columns_are_power_of_two_boxes_that_cover_the_row(columns, blocks):
    first, second = gluon_stage1.column_blocks(columns)
    assert (first, second) == blocks
    assert first + second >= columns  # every column is loaded; the rest are masked padding


@pytest.mark.parametrize("columns", [10, 52, 80, 96, 100, 128])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("final", [True, False])
def test_the_ring_fits_shared_memory(columns, head_dim, final):
    """The final iteration's stages hold keys and values beside queries, aL and Y staging; earlier
    iterations' hold keys alone beside queries and aL."""
    first, second = gluon_stage1.column_blocks(columns)
    stages = gluon_stage1.stages_that_fit(first, second, head_dim, 6, final)
    operands = 2 if final else 1
    per_stage = operands * (first + max(second, 16)) * head_dim * 2
    fixed = (2 + 2 * operands) * 64 * head_dim * 2
    assert 1 <= stages <= 6
    assert fixed + stages * per_stage <= gluon_stage1.SHARED_MEMORY_BYTES


def test_the_measured_rings():
    """80 columns at head dim 128 kept three stages (H100: 221,600 bytes); 64 + 64 needed two (three
    asked for 295,328 of 232,448)."""
    assert gluon_stage1.stages_that_fit(64, 16, 128, 3) == 3
    assert gluon_stage1.stages_that_fit(64, 64, 128, 3) == 2


def test_earlier_iterations_keep_as_many_bytes_in_flight():
    """Without values, the aL-only stage 1 at 80 columns fits the six key stages its launcher asks for."""
    assert gluon_stage1.stages_that_fit(64, 16, 128, 6, final=False) == 6
    assert gluon_stage1.stages_that_fit(64, 16, 128, 6, final=True) == 3


def test_not_offered_off_hopper_or_for_split_tiles():
    grid = (4, 4, 52)
    tokens = 4 * 4 * 52
    q = k = v = torch.zeros(1, 2, tokens, 128, dtype=torch.bfloat16)  # CPU tensors
    assert not gluon_stage1.serves(q, k, v, monarch_layout(grid, tokens, tokens))
    assert not gluon_stage1.serves(q, k, v, monarch_layout(grid, tokens, tokens, h_split=2))
