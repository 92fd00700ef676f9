"""kernels/lean_launch.py: a kernel launched again directly gives what Triton's own launch gives."""

from __future__ import annotations

import importlib.util

import pytest
import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None
gpu = [
    pytest.mark.gpu,
    pytest.mark.skipif(not HAS_TRITON, reason="needs the triton package"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with -m gpu on the lent H100)"),
]


def _kernels():
    import triton
    import triton.language as tl

    from rtv.kernels.lean_launch import LeanKernel

    @triton.jit
    def scaled_copy(X, OUT, n, stride, scale, SHIFT: tl.constexpr, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(X + i * stride, mask=i < n, other=0.0)
        tl.store(OUT + i, x * scale + SHIFT, mask=i < n)

    return scaled_copy, LeanKernel(scaled_copy)


@gpu[0]
@gpu[1]
@gpu[2]
def test_lean_launches_match_triton_for_every_specialisation():
    jit, lean = _kernels()
    base = torch.randn(4096, device="cuda")
    cases = [  # (input view, n, stride): aligned, misaligned pointer, n == 1, odd stride, n % 16 == 0
        (base, 1000, 1), (base, 1000, 1), (base[1:], 1000, 1), (base, 1, 1), (base, 999, 3), (base, 1024, 2),
        (base[3:], 1, 1), (base, 1000, 1),
    ]  # fmt: skip
    for shift in (0.0, 2.0):
        for x, n, stride in cases:
            expected = x[: n * stride : stride] * 0.5 + shift
            out = torch.full((n,), float("nan"), device="cuda")
            lean[(triton_cdiv(n, 128),)](x, out, n, stride, 0.5, SHIFT=shift, BLOCK=128)
            torch.testing.assert_close(out, expected)
            again = torch.empty_like(out)
            jit[(triton_cdiv(n, 128),)](x, again, n, stride, 0.5, SHIFT=shift, BLOCK=128)
            assert torch.equal(out, again)
    # each distinct specialisation compiled once through Triton, every repeat launched directly
    assert lean.fast_launches >= 4, lean.fast_launches


def triton_cdiv(a, b):
    return -(-a // b)
