"""The Wan VAE decoder's fused passes (kernels/wan_vae): the torch reference against the plain
formulas on the CPU, the Triton kernels against the reference on the GPU (``-m gpu``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gpu_marks import on_gpu

from rtv.kernels.wan_vae import add_bias_residual, rms_norm_silu, rms_norm_silu_reference


def _activations(b, c, t, h, w, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    # channel-dependent offsets and a few large channels: the norm is not dominated by noise
    x = torch.randn(b, c, t, h, w, generator=g) + torch.linspace(-2, 2, c).view(1, c, 1, 1, 1)
    x[:, :: max(1, c // 7)] *= 8
    return x.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last_3d)


def test_reference_is_rms_norm_times_gamma_then_silu():
    x = _activations(2, 12, 3, 4, 5)
    gamma = torch.rand(12, 1, 1, 1) + 0.5
    bias = torch.randn(12)
    y = x + bias.view(1, -1, 1, 1, 1)
    rms = y.pow(2).mean(dim=1, keepdim=True).sqrt()
    expected = F.silu(y / rms * gamma.view(1, -1, 1, 1, 1))
    torch.testing.assert_close(rms_norm_silu(x, gamma, 12**0.5, bias), expected, rtol=1e-5, atol=1e-6)


def test_reference_writes_into_a_view_of_a_larger_buffer():
    x = _activations(1, 8, 2, 3, 3)
    gamma = torch.ones(8, 1, 1, 1)
    buf = torch.full((1, 8, 4, 3, 3), float("nan")).contiguous(memory_format=torch.channels_last_3d)
    out = rms_norm_silu(x, gamma, 8**0.5, out=buf[:, :, 2:])
    assert out.data_ptr() == buf[:, :, 2:].data_ptr()
    assert torch.isnan(buf[:, :, :2]).all() and not torch.isnan(buf[:, :, 2:]).any()


def test_add_bias_residual_adds_in_place():
    x, r = _activations(1, 6, 2, 3, 3, seed=1), _activations(1, 6, 2, 3, 3, seed=2)
    bias = torch.randn(6)
    expected = x + bias.view(1, -1, 1, 1, 1) + r
    out = add_bias_residual(x, bias, r)
    assert out is x
    torch.testing.assert_close(out, expected)


def test_forcing_triton_on_the_cpu_says_what_is_needed():
    x = _activations(1, 4, 1, 2, 2)
    with pytest.raises(ValueError, match="CUDA tensors"):
        rms_norm_silu(x, torch.ones(4), 2.0, backend="triton")
    with pytest.raises(ValueError, match="backend must be"):
        rms_norm_silu(x, torch.ones(4), 2.0, backend="cuda")


SHAPES = [(1, 96, 4, 6, 10), (2, 192, 1, 5, 7), (1, 384, 2, 3, 5), (2, 3, 2, 4, 4), (1, 16, 1, 9, 13)]


@on_gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "in_bias"])
def test_triton_norm_silu_matches_reference_and_writes_every_frame(dtype, shape, with_bias):
    b, c, t, h, w = shape
    x = _activations(*shape, dtype=dtype, device="cuda")
    gamma = (torch.rand(c, 1, 1, 1) + 0.5).to("cuda", dtype)
    bias = torch.randn(c).to("cuda", dtype) if with_bias else None
    buf = torch.full((b, c, t + 2, h, w), float("nan"), device="cuda", dtype=dtype)
    buf = buf.contiguous(memory_format=torch.channels_last_3d)
    rms_norm_silu(x, gamma, c**0.5, bias, out=buf[:, :, 2:], backend="triton")
    expected = rms_norm_silu_reference(
        x.float(), gamma.float(), c**0.5, None if bias is None else bias.float()
    )  # float32 on the same rounded inputs: the error measured is the kernel's own
    got = buf[:, :, 2:].float()
    assert not torch.isnan(got).any() and torch.isnan(buf[:, :, :2]).all()
    error = (got - expected).norm() / expected.norm()
    assert error < (1e-5 if dtype == torch.float32 else 1e-2), f"relative L2 error {error:.2e}"


@on_gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_triton_norm_silu_takes_a_contiguous_ncdhw_input(dtype):
    x = _activations(1, 96, 2, 5, 6, dtype=dtype, device="cuda").contiguous()  # NCDHW, not channels-last
    gamma = torch.rand(96, 1, 1, 1, device="cuda", dtype=dtype) + 0.5
    got = rms_norm_silu(x, gamma, 96**0.5, backend="triton").float()
    expected = rms_norm_silu_reference(x.float(), gamma.float(), 96**0.5)
    assert (got - expected).norm() / expected.norm() < (1e-5 if dtype == torch.float32 else 1e-2)


@on_gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
def test_triton_add_bias_residual_matches_reference(dtype, with_bias):
    x = _activations(2, 96, 3, 5, 7, dtype=dtype, device="cuda", seed=3)
    r = _activations(2, 96, 3, 5, 7, dtype=dtype, device="cuda", seed=4)
    bias = torch.randn(96, device="cuda", dtype=dtype) if with_bias else None
    expected = x.float() + r.float() + (0 if bias is None else bias.float().view(1, -1, 1, 1, 1))
    got = add_bias_residual(x, bias, r, backend="triton").float()
    assert (got - expected).norm() / expected.norm() < (1e-6 if dtype == torch.float32 else 1e-2)
