"""The Gluon refine's host-side planning (kernels/monarch/gluon_refine.py), on the CPU: how many aL blocks
stay in shared memory, and which calls it serves. Its kernel runs in tests/unit/test_monarch_triton.py (GPU)."""

from __future__ import annotations

import pytest
import torch

from rtv.kernels.monarch import gluon_refine, monarch_layout


@pytest.mark.parametrize("head_dim, slots", [(128, 13), (64, 27)])
def test_the_slots_and_the_queries_fit_shared_memory(head_dim, slots):
    """13 slots of 64 summary keys at head dim 128 (832 of 720p's 945 rows; all of 480p's 630)."""
    assert gluon_refine.buffers_that_fit(head_dim) == slots
    used = slots * gluon_refine.BLOCK_C * head_dim * 2 + gluon_refine.BLOCK_L * head_dim * 2
    assert used <= gluon_refine.SHARED_MEMORY_BYTES < used + gluon_refine.BLOCK_C * head_dim * 2


def test_not_served_on_the_cpu_or_for_split_tiles():
    grid = (4, 6, 52)
    tokens = 4 * 6 * 52
    q = torch.zeros(1, 2, tokens, 128, dtype=torch.bfloat16)
    assert not gluon_refine.serves(q, monarch_layout(grid, tokens, tokens))
    assert not gluon_refine.serves(q, monarch_layout(grid, tokens, tokens, h_split=2))
