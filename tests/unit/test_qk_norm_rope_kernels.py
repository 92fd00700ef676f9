"""q/k RMS norm + RoPE of Wan self-attention (kernels/qk_norm_rope): reference on the CPU, Triton on the GPU."""

from __future__ import annotations

import math

import pytest
import torch
from gpu_marks import on_gpu

from rtv.kernels.qk_norm_rope import qk_norm_rope, qk_norm_rope_reference


def wan_freqs(tokens: int, head_dim: int, first_position: int = 0, batch: int = 1) -> torch.Tensor:
    """Rotation matrices [batch, tokens, 1, head_dim/2, 2, 2] as Wan's rope_embedder builds them."""
    half = head_dim // 2
    positions = torch.arange(first_position, first_position + tokens, dtype=torch.float64)
    inv = 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    angle = positions[:, None] * inv[None, :]
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2).float()
    return rot.view(1, tokens, 1, half, 2, 2).expand(batch, -1, -1, -1, -1, -1).contiguous()


def projections(b, s, c, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    # channel offsets and a few large channels: the norm is not dominated by noise
    x = torch.randn(b, s, c, generator=g) + torch.linspace(-2, 2, c)
    x[..., :: max(1, c // 7)] *= 8
    return x.to(device=device, dtype=dtype)


def test_reference_is_rms_norm_then_a_rotation_of_each_pair():
    b, s, heads, d = 2, 5, 3, 8
    x, w = projections(b, s, heads * d, torch.float64), torch.rand(heads * d, dtype=torch.float64) + 0.5
    freqs = wan_freqs(s, d, first_position=7).double()
    got = qk_norm_rope_reference(x, w, 1e-6, freqs, heads)
    y = x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * w
    y = y.view(b, s, heads, d // 2, 2)
    angle = torch.arange(7, 7 + s, dtype=torch.float64)[:, None] * 10000.0 ** (-torch.arange(d // 2) / (d // 2))
    cos, sin = torch.cos(angle)[None, :, None], torch.sin(angle)[None, :, None]
    expected = torch.stack([y[..., 0] * cos - y[..., 1] * sin, y[..., 0] * sin + y[..., 1] * cos], -1)
    torch.testing.assert_close(got, expected.reshape(b, s, heads * d), rtol=1e-6, atol=1e-6)


def test_reference_writes_into_a_view_of_a_larger_buffer():
    x, w, freqs = projections(1, 4, 16), torch.ones(16), wan_freqs(4, 8)
    cache = torch.full((1, 10, 16), float("nan"))
    qk_norm_rope(x, w, 1e-6, freqs, 2, out=cache[:, 3:7], backend="torch")
    assert torch.equal(cache[:, 3:7], qk_norm_rope_reference(x, w, 1e-6, freqs, 2))
    assert torch.isnan(cache[:, :3]).all() and torch.isnan(cache[:, 7:]).all()


def test_forcing_triton_on_the_cpu_says_what_is_needed():
    with pytest.raises(ValueError, match="CUDA"):
        qk_norm_rope(projections(1, 2, 16), torch.ones(16), 1e-6, wan_freqs(2, 8), 2, backend="triton")


# (batch, tokens, heads, head_dim): Wan 1.3B's 12 x 128 and 14B's 40 x 128, odd token counts
SHAPES = [(1, 1560, 12, 128), (2, 45, 12, 128), (1, 77, 40, 128), (1, 9, 4, 64), (3, 5, 2, 8)]


@on_gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_triton_matches_reference_into_a_cache_view(dtype, shape):
    b, s, heads, d = shape
    c = heads * d
    x = projections(b, s, c, dtype, "cuda", seed=s)
    w = (torch.rand(c) + 0.5).to("cuda", dtype)
    freqs = wan_freqs(s, d, first_position=3 * s, batch=1).cuda()
    cache = torch.full((b, s + 11, c), float("nan"), device="cuda", dtype=dtype)
    qk_norm_rope(x, w, 1e-6, freqs, heads, out=cache[:, 4 : 4 + s], backend="triton")
    expected = qk_norm_rope_reference(x, w, 1e-6, freqs, heads)  # the same rounding steps, torch kernels
    got = cache[:, 4 : 4 + s]
    assert not torch.isnan(got).any() and torch.isnan(cache[:, :4]).all() and torch.isnan(cache[:, 4 + s :]).all()
    error = ((got.float() - expected.float()).norm() / expected.float().norm()).item()
    assert error < (1e-5 if dtype == torch.float32 else 1e-2), f"relative L2 error {error:.2e}"
    # bf16/fp16: the norm rounds once in both, so almost every value agrees to the last bit
    if dtype != torch.float32:
        close = (got.float() - expected.float()).abs() <= 2 * torch.finfo(dtype).eps * expected.float().abs() + 1e-6
        assert close.float().mean() > 0.99


@on_gpu
def test_triton_takes_per_batch_freqs_and_strided_rows():
    b, s, heads, d = 2, 33, 12, 128
    c = heads * d
    wide = projections(b, s, 3 * c, torch.bfloat16, "cuda")  # a fused qkv projection: k is a strided view
    x = wide[..., c : 2 * c]
    w = (torch.rand(c) + 0.5).to("cuda", torch.bfloat16)
    freqs = torch.cat([wan_freqs(s, d, 0), wan_freqs(s, d, 100)]).cuda()
    got = qk_norm_rope(x, w, 1e-6, freqs, heads, backend="triton")
    expected = qk_norm_rope_reference(x, w, 1e-6, freqs, heads)
    error = ((got.float() - expected.float()).norm() / expected.float().norm()).item()
    assert error < 1e-2 and not math.isnan(error)


@on_gpu
def test_under_torch_compile_the_reference_is_traced():
    x = projections(1, 60, 1536, torch.bfloat16, "cuda")
    weight = (torch.rand(1536) + 0.5).to("cuda", torch.bfloat16)
    freqs = wan_freqs(60, 128).to("cuda")

    def normed(x):
        return qk_norm_rope(x, weight, 1e-6, freqs, 12)

    got = torch.compile(normed, backend="aot_eager", fullgraph=True)(x)
    assert torch.equal(got, qk_norm_rope_reference(x, weight, 1e-6, freqs, 12))
