"""What the package's Gluon kernels for Hopper share: Triton's experimental Gluon when it is installed, the
device check, one CTA's shared-memory budget, and the 128-byte-swizzled layout of 16-bit tiles."""

from __future__ import annotations

import functools

import torch

try:  # Triton's experimental Gluon (3.5+); without it the Gluon kernels are simply not candidates
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared,
        mbarrier,
        tma,
        warpgroup_mma,
    )
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    HAS_GLUON = True
except ImportError:  # pragma: no cover - depends on the installed Triton
    HAS_GLUON = False
    gluon = gl = fence_async_shared = mbarrier = tma = warpgroup_mma = TensorDescriptor = None

SHARED_MEMORY_BYTES = 232448 - 2048
"""sm_90's shared memory per block, less room for the barriers and the compiler's own scratch."""


@functools.cache
def is_hopper(index: int) -> bool:
    """sm_90 exactly: the kernels use its wgmma and TMA (other GPUs keep the Triton programs)."""
    return torch.cuda.get_device_capability(index) == (9, 0)


@functools.cache
def shared_layout(rank: int):
    """NVMMA layout of a 16-bit tile of ``rank`` dimensions, 128-byte swizzle (TMA boxes, wgmma operands)."""
    return gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=rank)


__all__ = [
    "HAS_GLUON", "SHARED_MEMORY_BYTES", "TensorDescriptor", "fence_async_shared", "gl", "gluon", "is_hopper",
    "mbarrier", "shared_layout", "tma", "warpgroup_mma",
]  # fmt: skip
