"""Norm and residual steps of the Wan block (kernels/wan_block): reference on the CPU, Triton on the GPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gpu_marks import on_gpu

from rtv.kernels.wan_block import norm_step, norm_step_reference


def activations(b, s, c, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    # a large per-channel offset and a few big channels: mean and variance both matter
    x = torch.randn(b, s, c, generator=g) * 3 + torch.linspace(-4, 4, c)
    x[..., :: max(1, c // 5)] *= 10
    return x.to(device=device, dtype=dtype)


def modulation(b, c, dtype=torch.float32, device="cpu", seed=1):
    """Six [B, 1, C] vectors as the block makes them: views of one [B, 1, 6, C] tensor."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 1, 6, c, generator=g) * 0.5).to(device=device, dtype=dtype).unbind(2)


def test_reference_is_the_blocks_sequence_of_ops():
    x, y = activations(2, 7, 32), activations(2, 7, 32, seed=3)
    e = modulation(2, 32)
    w, bias = torch.rand(32) + 0.5, torch.randn(32)
    x1, h = norm_step_reference(x, 1e-6, residual=y, gate=e[2], weight=w, bias=bias)
    assert torch.equal(x1, x + y * e[2]) or torch.allclose(x1, x + y * e[2], atol=1e-6)
    torch.testing.assert_close(h, F.layer_norm(x1, (32,), w, bias, 1e-6))
    _, h = norm_step_reference(x, 1e-6, shift=e[0], scale=e[1])
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(h, (x - mean) / torch.sqrt(var + 1e-6) * (1 + e[1]) + e[0], rtol=1e-5, atol=1e-5)
    x2, _ = norm_step_reference(x, 1e-6, residual=y, shift=e[3], scale=e[4])
    assert torch.equal(x2, x + y)


def test_forcing_triton_on_the_cpu_says_what_is_needed():
    with pytest.raises(ValueError, match="CUDA"):
        norm_step(activations(1, 2, 8), 1e-6, backend="triton")


# the block's three steps: modulated norm, gated residual + affine norm, residual + modulated norm
STEPS = {
    "modulate": lambda e, w, b, y: dict(shift=e[0], scale=e[1]),
    "gate_affine": lambda e, w, b, y: dict(residual=y, gate=e[2], weight=w, bias=b),
    "residual_modulate": lambda e, w, b, y: dict(residual=y, shift=e[3], scale=e[4]),
    "plain": lambda e, w, b, y: dict(),
}


@on_gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("shape", [(1, 4680, 1536), (2, 45, 1536), (1, 33, 5120), (3, 5, 24)], ids=str)
@pytest.mark.parametrize("step", sorted(STEPS))
def test_triton_matches_reference(dtype, shape, step):
    b, s, c = shape
    x, y = activations(b, s, c, dtype, "cuda"), activations(b, s, c, dtype, "cuda", seed=5)
    e = modulation(b, c, dtype, "cuda")
    w, bias = (torch.rand(c) + 0.5).to("cuda", dtype), torch.randn(c).to("cuda", dtype)
    kwargs = STEPS[step](e, w, bias, y)
    x_got, h_got = norm_step(x, 1e-6, backend="triton", **kwargs)
    x_ref, h_ref = norm_step_reference(x, 1e-6, **kwargs)  # torch's kernels, the same rounding steps
    for got, ref in ((x_got, x_ref), (h_got, h_ref)):
        assert not torch.isnan(got).any()
        error = ((got.float() - ref.float()).norm() / ref.float().norm()).item()
        assert error < (1e-5 if dtype == torch.float32 else 1e-2), f"{step}: relative L2 error {error:.2e}"
    if "residual" not in kwargs:
        assert x_got is x  # no residual: the input is passed through, not copied


@on_gpu
def test_under_torch_compile_the_reference_is_traced():
    # a model compiled after RTV's patch (TorchCompileModel) traces the reference ops, which the
    # compiler fuses itself; aot_eager runs exactly those ops, so the result is the reference's
    x, y = activations(1, 45, 1536, torch.bfloat16, "cuda"), activations(1, 45, 1536, torch.bfloat16, "cuda", seed=5)
    e = modulation(1, 1536, torch.bfloat16, "cuda")
    kwargs = {"residual": y, "gate": e[2], "shift": e[3], "scale": e[4]}

    def step(x):
        return norm_step(x, 1e-6, **kwargs)

    got = torch.compile(step, backend="aot_eager", fullgraph=True)(x)
    for a, b in zip(got, norm_step_reference(x, 1e-6, **kwargs)):
        assert torch.equal(a, b)
