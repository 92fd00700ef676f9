"""Token shards of a frame-major sequence and their global RoPE positions (patches/sp_layout.py, no ComfyUI)."""

import pytest
import torch

from rtv.patches.sp_layout import RopeAxes, ShardLayout, check_heads, shard_token_positions

ROWS, COLS = 3, 5


def test_each_shard_of_a_chunk_rotates_with_its_global_frame_indices():
    grid, world, first = (3, ROWS, COLS), 4, 6  # chunk k = 2 of 3 latent frames starts at global frame 6
    layout = ShardLayout(45, world)
    assert [layout.valid_tokens(r) for r in range(world)] == [12, 12, 12, 9]  # last shard: 3 pad tokens
    positions = (6.0, 7.0, 8.0)
    for rank in range(world):
        ids = shard_token_positions(grid, rank, world, positions)
        for i in range(layout.valid_tokens(rank)):
            g = rank * layout.shard_tokens + i
            assert ids[i].tolist() == [first + g // (ROWS * COLS), (g // COLS) % ROWS, g % COLS]
        assert not ids[layout.valid_tokens(rank) :].any()
    # rank 1 starts in the middle of the chunk's first frame: frame index 6, row 2, column 2
    assert shard_token_positions(grid, 1, world, positions)[0].tolist() == [6.0, 2.0, 2.0]


def test_shards_cover_the_sequence_in_order_and_pad_only_the_end():
    x = torch.arange(45.0).reshape(1, 45, 1)
    for world in (1, 2, 3, 4, 8):
        layout = ShardLayout(45, world)
        shards = [layout.shard(x, r) for r in range(world)]
        assert all(s.shape[1] == layout.shard_tokens for s in shards)
        joined = torch.cat(shards, dim=1)
        assert torch.equal(joined[:, :45], x) and not joined[:, 45:].any()
    assert ShardLayout(15, 8).valid_tokens(7) == 1  # a one-frame chunk over 8 ranks: 2 tokens a rank


def test_rope_options_shift_and_scale_the_axes_like_comfyui():
    ids = shard_token_positions((2, ROWS, COLS), 0, 1, None, RopeAxes(shift_t=3.0, shift_y=1.0, scale_x=0.5, scale_t=2.0))
    assert ids[0].tolist() == [3.0, 1.0, 0.0]
    assert ids[ROWS * COLS + COLS + 3].tolist() == [5.0, 2.0, 1.5]  # frame 1 at 3 + 2, row 1, column 3 * 0.5


def test_heads_must_split_evenly_over_the_ranks():
    check_heads(12, 4)
    with pytest.raises(ValueError, match=r"12 attention heads .* cannot be split over 8 ranks.*1, 2, 3, 4, 6, 12"):
        check_heads(12, 8)
