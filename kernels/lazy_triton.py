"""The lazy Triton import shared by the kernel packages that pair a torch reference with Triton passes.

A package imports its ``triton_fused`` module the first time a CUDA call can use it, so importing the
package never needs Triton (CPU machines, ComfyUI without Triton) and a machine without Triton runs
the reference.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util

import torch

TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
BACKENDS = ("auto", "torch", "triton")


@functools.cache
def triton_module(package: str, name: str = "triton_fused"):
    """``package.name`` imported once, or None when the triton package is missing."""
    if importlib.util.find_spec("triton") is None:
        return None
    return importlib.import_module(f"{package}.{name}")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
