"""What a CUDA graph capture of a model call needs under ComfyUI's default allocator.

ComfyUI's main starts PyTorch with ``backend:cudaMallocAsync`` unless told ``--disable-cuda-malloc``.
Under that allocator a tensor created during a capture is a graph allocation: its address is fixed,
but the driver maps memory behind it only when the graph is launched. Triton's launcher asks the
driver about every tensor argument (``cuPointerGetAttribute``, to catch CPU tensors) and refuses such
an address ("Pointer argument cannot be accessed from Triton (cpu tensor?)"), while the kernel itself
would run fine on it at replay. The launcher skips the question for arguments passed as plain
integers, so while a capture runs, ``triton_launches_by_address`` hands it each tensor's address.
The kernels were compiled (and their arguments specialised) by the eager calls before the capture.

The same allocator makes a failed capture dangerous: a tensor made inside it whose graph never ran has
no memory behind its address, and freeing it later ends the process inside PyTorch's allocator
(bench/results/graph_capture_probe_cudamallocasync_h100_session20.json: every failed capture
aborted, whatever the error). So a capture runs with PyTorch's sync check raising (a host sync
becomes a Python error before it reaches the driver, which would invalidate the capture), and a
capture given up is launched once (``settle_failed_capture``) so that its memory exists before
anything from it is freed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings

import torch

log = logging.getLogger(__name__)
_KEPT_FROM_FAILED_CAPTURES: list = []


def _launcher_class():
    try:
        from triton.backends.nvidia.driver import CudaLauncher
    except ImportError:  # no Triton, or no CUDA backend: nothing of ours launches through it
        return None
    return CudaLauncher


@contextlib.contextmanager
def triton_launches_by_address():
    """While inside: Triton kernel launches pass tensors as their device addresses."""
    launcher = _launcher_class()
    if launcher is None or getattr(launcher.__call__, "rtv_by_address", False):
        yield
        return
    original = launcher.__call__

    @functools.wraps(original)
    def by_address(self, *args):
        return original(self, *(a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args))

    by_address.rtv_by_address = True
    launcher.__call__ = by_address
    try:
        yield
    finally:
        launcher.__call__ = original


@contextlib.contextmanager
def capture_guards():
    """Around a capture: Triton launches by address, and host syncs raise before they reach the driver."""
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings():  # "a prototype feature": said once per process, of no use to users
        warnings.simplefilter("ignore", UserWarning)
        torch.cuda.set_sync_debug_mode("error")
    try:
        with triton_launches_by_address():
            yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def settle_failed_capture(graph: torch.cuda.CUDAGraph, *keep) -> None:
    """After a capture was given up: make what it allocated safe to free, under any allocator.

    Under cudaMallocAsync the partial graph is launched once (it repeats the first part of the call
    on the same inputs, which the eager call that follows redoes). If the driver had invalidated the
    capture there is no graph to launch: ``keep`` (the error with its frames, the objects holding the
    capture's tensors) stays referenced for the life of the process instead of being freed."""
    if torch.cuda.get_allocator_backend() != "cudaMallocAsync":
        return
    try:
        graph.replay()
        torch.cuda.synchronize()
    except Exception as error:  # noqa: BLE001 - no graph to launch: never free what the capture made
        _KEPT_FROM_FAILED_CAPTURES.append((graph, error, keep))
        log.warning("[RTV] a failed CUDA graph capture left memory that is kept until ComfyUI exits: %s", error)
