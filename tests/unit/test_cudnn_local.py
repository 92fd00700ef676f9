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


@pytest.mark.parametrize(
    "query_frames, tile_frames, exact_local, first_tile, tiles",
    [(6, 1, 1, 0, 6), (6, 2, 1, 0, 3), (6, 1, 2, 2, 3), (2, 1, 1, 0, 2), (4, 2, 0, 1, 1)],
    ids=["full-r1", "tile_frames2", "chunk-of-tiles-r2", "query-chunk-r1", "query-chunk-tf2-r0"],
)
def test_windows_and_layout_match_the_reference(query_frames, tile_frames, exact_local, first_tile, tiles):
    frames, h, w = GRID
    gen = torch.Generator().manual_seed(0)
    heads, d = 2, 8
    q = torch.randn(1, heads, query_frames * h * w, d, generator=gen, dtype=torch.float64)
    k = torch.randn(1, heads, frames * h * w, d, generator=gen, dtype=torch.float64)
    v = torch.randn(1, heads, frames * h * w, d, generator=gen, dtype=torch.float64)
    layout = monarch_layout(GRID, q.shape[2], k.shape[2], tile_frames=tile_frames)
    scale = 0.3
    out = torch.full((heads, tiles, layout.b2, layout.b1, d), float("nan"), dtype=torch.float32)
    lse = torch.full((heads, tiles, layout.b2, layout.b1), float("nan"), dtype=torch.float32)
    cudnn_local.local_tiles_into(
        out, lse, q, k, v, layout, first_tile, tiles, exact_local, scale, attend=torch_attention
    )
    q_tiles = to_tiles((q[0] * scale), layout)[:, first_tile : first_tile + tiles]
    ref_out, ref_lse = exact_local_attention(q_tiles, to_tiles(k[0], layout), to_tiles(v[0], layout), layout,
                                             first_tile, exact_local)  # fmt: skip
    torch.testing.assert_close(out, ref_out.transpose(2, 3).float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        lse, (ref_lse.transpose(2, 3) * cudnn_local.LOG2E).float(), rtol=1e-5, atol=1e-5
    )


def test_serves_only_whole_frame_tiles_of_16_bit_inputs():
    q = torch.zeros(1, 1, 6 * 4 * 5, 64, dtype=torch.bfloat16)
    assert cudnn_local.serves(q, monarch_layout(GRID, q.shape[2], q.shape[2]))
    assert not cudnn_local.serves(q, monarch_layout(GRID, q.shape[2], q.shape[2], h_split=2))
    assert not cudnn_local.serves(q.float(), monarch_layout(GRID, q.shape[2], q.shape[2]))
