"""Monarch attention for video tokens: public entry point and backend dispatch.

``monarch_attention`` validates the grid, then runs a backend. ``reference.py`` defines the
meaning (torch, any device). Faster backends live in modules named ``triton_*.py`` in this package;
each one calls :func:`register_backend` when imported. They are discovered and imported lazily, the
first time a CUDA call asks for ``auto`` or ``triton``, so importing this package never needs Triton.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from .extra_keys import check_extra
from .reference import (
    EXACT_LOCAL_OFF,
    MonarchLayout,
    density,
    monarch_attention_reference,
    monarch_layout,
)

__all__ = [
    "BACKENDS",
    "EXACT_LOCAL_OFF",
    "MonarchBackend",
    "MonarchLayout",
    "density",
    "monarch_attention",
    "monarch_attention_reference",
    "monarch_layout",
    "register_backend",
]

BACKENDS = ("auto", "triton", "torch")
"""Values accepted by ``backend``."""

_TRITON_MODULE_PREFIX = "triton_"


@dataclass(frozen=True)
class MonarchBackend:
    """A fast implementation with the same meaning as the reference.

    ``run(q, k, v, layout, iterations=..., scale=..., exact_local=..., extra_k=..., extra_v=..., extra_bias=...)`` returns the output in q's
    dtype. ``unsupported(q, k, v, layout, iterations, exact_local)`` returns None when the backend
    can serve the call, else a short reason (shown to users who force this backend).
    """

    name: str
    run: Callable[..., Tensor]
    unsupported: Callable[..., str | None]


_registry: dict[str, MonarchBackend] = {}
_unavailable: list[str] = []  # why no Triton backend could be registered
_import_failures: list[str] = []  # triton_* modules that exist but failed to import
_warned = False
_discovered = False


def register_backend(backend: MonarchBackend) -> None:
    """Called by a ``triton_*.py`` module at import time to offer its kernel."""
    _registry[backend.name] = backend


def _discover_triton_backends() -> None:
    """Import the package's ``triton_*`` modules once, if Triton is installed."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    if importlib.util.find_spec("triton") is None:
        _unavailable.append("the triton package is not installed")
        return
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith(_TRITON_MODULE_PREFIX)]
    if not names:
        _unavailable.append("no Triton Monarch kernel module exists yet")
    for name in names:
        try:
            importlib.import_module(f".{name}", __name__)
        except ImportError as error:  # a broken optional kernel must not break the torch path
            _import_failures.append(f"kernels/monarch/{name}.py failed to import: {error}")


def _pick_backend(
    backend: str, q: Tensor, k: Tensor, v: Tensor, layout: MonarchLayout, iterations: int, exact_local: int
) -> MonarchBackend | None:
    """The fast backend to use, or None for the torch reference."""
    global _warned
    if backend not in BACKENDS:
        raise ValueError(f"Monarch attention: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" or (backend == "auto" and not q.is_cuda):
        return None
    if backend == "triton" and not q.is_cuda:
        raise RuntimeError(
            f"Monarch attention: backend='triton' needs CUDA tensors, got device {q.device}; "
            "use backend='torch' or 'auto'."
        )
    _discover_triton_backends()
    fast = _registry.get("triton")
    if fast is None:
        reason = "; ".join(_unavailable + _import_failures) or "no Triton backend registered"
    else:
        reason = fast.unsupported(q, k, v, layout, iterations, exact_local)
    if reason is None:
        return fast
    if backend == "triton":
        raise RuntimeError(
            f"Monarch attention: backend='triton' is not available for this call ({reason}); "
            "use backend='torch' or 'auto'."
        )
    if _import_failures and not _warned:  # auto on CUDA with a kernel that should exist: say so once
        _warned = True
        warnings.warn(
            f"Monarch attention falls back to torch: {'; '.join(_import_failures)}",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


def monarch_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    grid: tuple[int, int, int],
    *,
    tile_frames: int = 1,
    h_split: int = 1,
    w_split: int = 1,
    iterations: int = 1,
    scale: float | None = None,
    backend: str = "auto",
    exact_local: int = EXACT_LOCAL_OFF,
    extra_k: Tensor | None = None,
    extra_v: Tensor | None = None,
    extra_bias: float = 0.0,
) -> Tensor:
    """Attention over video tokens with the attention matrix approximated by a tiled Monarch matrix.

    Args:
        q: ``[B, H, Nq, D]`` queries: the whole grid (Nq == Nk) or its last ``Nq / (h*w)`` frames
            (a chunk against cached keys; the chunk sees itself and everything before, no mask).
        k, v: ``[B, H, Nk, D]`` keys and values, frame-major tokens of ``grid``.
        grid: ``(F, h, w)`` the key-side token grid.
        tile_frames, h_split, w_split: a tile is tile_frames frames x h/h_split rows x
            w/w_split columns (b1 = tile_frames*h/h_split, b2 = w/w_split). More tiles: more work,
            closer to dense. Each must divide its axis (and tile_frames the query frames).
        iterations: alternating updates from L = identity; 1 is MonarchRT, more refine zero-shot.
        scale: logit scale, default ``D**-0.5``.
        backend: "auto" (Triton on CUDA when a kernel serves the call, else torch), "torch" or
            "triton" (error if unavailable).
        exact_local: -1 off; r >= 0 attends the key tiles within r tile-frames of the query's own
            tile-frame exactly and merges them with the Monarch part by log-sum-exp
            (``monarch_attention_reference`` documents the derivation).
        extra_k, extra_v: ``[B, H, Ne, D]`` keys outside the grid (text tokens of a joint attention,
            reference or guide frames), attended exactly by every query and merged the same way.
        extra_bias: added to the logit of every extra key (e.g. log s to weight context frames by s).

    Returns:
        ``[B, H, Nq, D]`` in q's dtype, computed in float32 (float64 for float64 inputs).

    Raises:
        ValueError: the grid or tiling does not divide (the message names the axis to change).
    """
    layout = monarch_layout(
        grid, q.shape[-2], k.shape[-2], tile_frames=tile_frames, h_split=h_split, w_split=w_split
    )
    extra_bias = float(extra_bias)
    check_extra(q, extra_k, extra_v, extra_bias)
    fast = _pick_backend(backend, q, k, v, layout, iterations, exact_local)
    if fast is not None:
        return fast.run(q, k, v, layout, iterations=iterations, scale=scale, exact_local=exact_local,
                        extra_k=extra_k, extra_v=extra_v, extra_bias=extra_bias)  # fmt: skip
    return monarch_attention_reference(
        q,
        k,
        v,
        grid,
        tile_frames=tile_frames,
        h_split=h_split,
        w_split=w_split,
        iterations=iterations,
        scale=scale,
        exact_local=exact_local,
        extra_k=extra_k,
        extra_v=extra_v,
        extra_bias=extra_bias,
    )
