"""The cuDNN path of the exact local tiles: its window gathering and output layout, on the CPU.

cuDNN itself runs only on the GPU (tests/unit/test_monarch_triton.py compares it there); here a
plain torch attention stands in for it, so what is checked is everything around the fused call:
which key windows each query tile gets (edge tiles have fewer), batching by window width, the
transposed ``[G, tiles, b2, b1]`` layout stage 2 reads, and the log2 normaliser.
"""

import pytest
import torch

from rtv.kernels.monarch import cudnn_local
from rtv.kernels.monarch.reference import exact_local_attention, monarch_layout, to_tiles

GRID = (6, 4, 5)  # frames, rows, columns: non-power-of-two tiles


def torch_attention(q, k, v, scale):
    logits = torch.einsum("bhqd,bhkd->bhqk", q, k) * scale
    lse = torch.logsumexp(logits, dim=-1)
    return torch.einsum("bhqk,bhkd->bhqd", (logits - lse[..., None]).exp(), v), lse


def token_major(batch, heads, tokens, d, gen):
    """[B, H, N, D] views of [B, N, H, D] memory, as Wan hands attention its heads."""
    return torch.randn(batch, tokens, heads, d, generator=gen, dtype=torch.float64).transpose(1, 2)


@pytest.mark.parametrize(
    "query_frames, tile_frames, exact_local, first_tile, tiles, batch",
    [(6, 1, 1, 0, 6, 1), (6, 2, 1, 0, 3, 1), (6, 1, 2, 2, 3, 1), (2, 1, 1, 0, 2, 1), (4, 2, 0, 1, 1, 1),
     (6, 1, 1, 0, 6, 2), (3, 1, 1, 1, 2, 2)],
    ids=["full-r1", "tile_frames2", "chunk-of-tiles-r2", "query-chunk-r1", "query-chunk-tf2-r0", "batch2",
         "batch2-query-chunk"],
)  # fmt: skip
def test_windows_and_layout_match_the_reference(query_frames, tile_frames, exact_local, first_tile, tiles, batch):
    frames, h, w = GRID
    gen = torch.Generator().manual_seed(0)
    heads, d = 2, 8
    q = token_major(batch, heads, query_frames * h * w, d, gen)
    k = token_major(batch, heads, frames * h * w, d, gen)
    v = token_major(batch, heads, frames * h * w, d, gen)
    layout = monarch_layout(GRID, q.shape[2], k.shape[2], tile_frames=tile_frames)
    scale = 0.3
    out = torch.full((batch * heads, tiles, layout.b2, layout.b1, d), float("nan"), dtype=torch.float32)
    lse = torch.full((batch * heads, tiles, layout.b2, layout.b1), float("nan"), dtype=torch.float32)
    cudnn_local.local_tiles_into(
        out, lse, q, k, v, layout, first_tile, tiles, exact_local, scale, attend=torch_attention
    )
    for b in range(batch):
        q_tiles = to_tiles((q[b] * scale), layout)[:, first_tile : first_tile + tiles]
        ref_out, ref_lse = exact_local_attention(q_tiles, to_tiles(k[b], layout), to_tiles(v[b], layout), layout,
                                                 first_tile, exact_local)  # fmt: skip
        rows = slice(b * heads, (b + 1) * heads)
        torch.testing.assert_close(out[rows], ref_out.transpose(2, 3).float(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            lse[rows], (ref_lse.transpose(2, 3) * cudnn_local.LOG2E).float(), rtol=1e-5, atol=1e-5
        )


def test_interior_tiles_share_one_call_and_edge_tiles_get_their_own():
    layout = monarch_layout((21, 30, 52), 32760, 32760)
    runs = cudnn_local._window_runs(layout, 0, 21, 1)
    assert runs == ((0, 1, 0, 2), (1, 19, 0, 3), (20, 1, 19, 2))


def test_serves_only_whole_frame_tiles_of_16_bit_inputs():
    q = torch.zeros(1, 1, 6 * 4 * 5, 64, dtype=torch.bfloat16)
    assert cudnn_local.serves(q, monarch_layout(GRID, q.shape[2], q.shape[2]))
    assert not cudnn_local.serves(q, monarch_layout(GRID, q.shape[2], q.shape[2], h_split=2))
    assert not cudnn_local.serves(q.float(), monarch_layout(GRID, q.shape[2], q.shape[2]))
