"""Replay the causal sampler's model calls from CUDA graphs (host-bound few-step sampling).

A Self-Forcing chunk runs the diffusion model 5 times (4 steps + the cache pass) on the same shapes,
the same cache slots and the same Python decisions (grid, block marks, cached text K/V); only the
latents and the timestep change. The sampler is bound by host time (many small kernels per block,
bench/host_probe.py), and a replayed graph costs the host almost nothing. Capturing costs about an
eager call, so it only pays when many calls replay it: once a rolling cache is full, every later chunk
has the same layout (frames, cache slots), so the sampler captures the model call at the first chunk
that repeats a layout and every later chunk only replays (``ChunkGraph.begin_chunk``). Chunks with a
new layout (a growing cache) run eagerly here, each block replaying its own graphs around the
self-attention instead (``patches/block_graphs.py``, owned by ``ChunkGraph.blocks`` and kept out of a
whole-call capture). Callers that only ``reset`` per chunk get the older policy:
first call eager, second captured, the rest replayed. A replay copies the call's inputs into the
graph's static tensors.

Outer wrappers whose Python takes a per-call decision that the graph would freeze (Monarch's dense
first/last steps) name it with ``set_call_variant``: each variant gets its own graph, and a variant
of ``EAGER`` (a call that must sync the host, such as Monarch's error report) runs eagerly.

Installed as the innermost DIFFUSION_MODEL wrapper, so the KV cache's and Monarch's per-call Python
bookkeeping still runs every call; counters incremented *inside* the forward (attention calls
replaced) count the eager and captured calls only. A model whose weights move or change per call is
not captured. Anything else that cannot be captured (a host sync, a host-to-device copy) makes the
capture fail: the chunk then runs eagerly and graphs stay off for the rest of the run, with one log
line. ``graph_capture`` makes both work under cudaMallocAsync, ComfyUI's default allocator.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from dataclasses import dataclass, field

import comfy.ldm.wan.model as wan_model
import comfy.patcher_extension as patcher_extension
import torch

from .block_graphs import graphable_block
from .fused_block import BLOCK_GRAPHS_KEY
from .graph_capture import capture_guards, settle_failed_capture

log = logging.getLogger(__name__)
PATCH_KEY = "rtv_chunk_cuda_graph"
CALL_VARIANT_KEY = "rtv_call_variant"
EAGER = "eager"


def _sinusoidal_embedding_on_device(dim, position):
    """ComfyUI's Wan ``sinusoidal_embedding_1d`` with its frequency ramp built on the position's device.

    The original builds ``torch.arange(half)`` on the CPU and copies it over, which a CUDA graph
    cannot capture; the values are the same integers either way, so the result is identical.
    """
    half = dim // 2
    position = position.type(torch.float32)
    ramp = torch.arange(half, device=position.device).to(position)
    sinusoid = torch.outer(position, torch.pow(10000, -ramp.div(half)))
    return torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1)


@contextlib.contextmanager
def time_embedding_on_device():
    """While inside: the one host-to-device copy in ComfyUI's Wan forward done on the device (same values).

    A CUDA graph cannot capture that copy, and in eager calls it syncs the host with the device once per
    model call (bench/host_probe.py lists it), draining the launch queue of a host-bound sampler."""
    original = wan_model.sinusoidal_embedding_1d
    wan_model.sinusoidal_embedding_1d = _sinusoidal_embedding_on_device
    try:
        yield
    finally:
        wan_model.sinusoidal_embedding_1d = original


def _where(error: BaseException) -> str:
    """The innermost frame outside torch: the line that did something a graph cannot capture."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "/torch/" not in f.filename]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def set_call_variant(transformer_options: dict, name: str, value) -> None:
    """Record a per-call decision of an outer wrapper (hashable ``value``, or ``EAGER``)."""
    transformer_options.setdefault(CALL_VARIANT_KEY, {})[name] = value


@dataclass
class _VariantGraph:
    calls: int = 0
    graph: torch.cuda.CUDAGraph | None = None
    static_inputs: list = field(default_factory=list)
    static_output: torch.Tensor | None = None


def _variant_key(variant: tuple, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> tuple:
    return (variant, *((t.shape, t.dtype, t.device) for t in (x, timestep, context)))


def _recorded_output(executor, inputs, transformer_options, kwargs, like: tuple | None) -> torch.Tensor:
    """The model call inside a capture. With the output's shape and dtype known from an eager call,
    it lands in a tensor made before the capture: under cudaMallocAsync, freeing a tensor made inside
    a capture logs a warning from PyTorch's allocator every time."""
    out = executor(*inputs, None, None, transformer_options, **kwargs)
    if like is None or (out.shape, out.dtype) != like[1:]:
        return out
    like[0].copy_(out)
    return like[0]


def capture_unsupported() -> str | None:
    """Why this process cannot capture the model call, or None.

    PyTorch's native caching allocator and cudaMallocAsync (ComfyUI's default unless started with
    ``--disable-cuda-malloc``) both can; under the latter Triton's launch check and a failed capture
    need the care of ``graph_capture`` (session 20: same frames with and without graphs under both)."""
    backend = torch.cuda.get_allocator_backend()
    if backend not in ("native", "cudaMallocAsync"):
        return f"CUDA graphs are not tried under the {backend} allocator"
    return None


class ChunkGraph:
    """The graphs of the current cache layout.

    The sampler calls ``begin_chunk(layout)`` before each chunk: a chunk whose layout (frames, cache
    slots) equals the previous chunk's replays the graphs already captured, which is every chunk of a
    rolling window once the window is full. Anything chunk-specific that a graph reads lives in
    storage kept across chunks (the KV cache buffers, the RoPE positions updated in place). Another
    layout drops them, and ``reset`` (a new run: new cache buffers) drops them too.
    """

    def __init__(self, blocks=None):
        self.blocks = blocks  # patches.block_graphs.BlockGraphs for the calls that run eagerly here
        self.enabled = True
        self.allocator_checked = False
        self.failure: str | None = None
        self.replays = 0
        self.captures = 0
        self.eager_calls = 0
        self.variants: dict = {}
        self.output_like: dict = {}  # variant key -> (shape, dtype) of its last eager output
        self.layout = None
        self.mode = "per_chunk"  # first call eager, second captured (callers that only reset)

    def reset(self) -> None:
        if self.blocks is not None:
            self.blocks.reset()
        self.variants = {}
        self.layout = None
        self.mode = "per_chunk"

    def begin_chunk(self, layout) -> None:
        """A chunk with a new layout runs eagerly: capturing for 4 replays costs what they save
        (bench/results/realtime_h100_cuda_graphs_run5.json), and a growing cache never repeats one. A
        chunk with the previous chunk's layout captures at its first call (that chunk already tuned
        the kernels and filled the caches) and every later chunk of the layout only replays."""
        if layout != self.layout:
            self.variants = {}
            self.layout = layout
            self.mode = "eager"
        else:
            self.mode = "replay"

    def wrapper(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                transformer_options=None, **kwargs):  # fmt: skip
        transformer_options = {} if transformer_options is None else transformer_options
        variant = tuple(sorted(transformer_options.get(CALL_VARIANT_KEY, {}).items()))
        # ComfyUI passes control=None (and Wan's extra conds) as keywords: any non-None one is a feature
        # (ControlNet residuals, reference latents) the static inputs below do not carry.
        plain = (clip_fea is None and time_dim_concat is None and context is not None
                 and all(value is None for value in kwargs.values()))
        if self.enabled and x.is_cuda and not self.allocator_checked:  # once: it cannot change in a process
            self.allocator_checked = True
            if (reason := capture_unsupported()) is not None:
                self.enabled, self.failure = False, reason
                if self.blocks is not None:
                    self.blocks.enabled, self.blocks.failure = False, reason
                log.warning("[RTV] CUDA graphs off for this run: %s", reason)
        eager = self.mode == "eager" or any(v == EAGER for _, v in variant)
        if eager or not (self.enabled and plain and x.is_cuda):
            self.eager_calls += 1
            out = executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)
            if self.enabled and plain and x.is_cuda and isinstance(out, torch.Tensor):  # for a later capture
                self.output_like[_variant_key(variant, x, timestep, context)] = (out.shape, out.dtype)
            return out
        key = _variant_key(variant, x, timestep, context)
        entry = self.variants.setdefault(key, _VariantGraph())
        entry.calls += 1
        if entry.calls == 1 and self.mode == "per_chunk":  # eager: autotuning, cuDNN plans, text K/V, positions
            self.eager_calls += 1
            out = executor(x, timestep, context, None, None, transformer_options, **kwargs)
            self.output_like[key] = (out.shape, out.dtype)
            return out
        if entry.graph is None:
            return self._capture_and_run(entry, key, executor, (x, timestep, context), transformer_options, kwargs)
        for static, value in zip(entry.static_inputs, (x, timestep, context)):
            static.copy_(value)
        entry.graph.replay()
        self.replays += 1
        return entry.static_output.clone()

    def _capture_and_run(self, entry: _VariantGraph, key, executor, inputs, transformer_options, kwargs):
        model = getattr(executor, "class_obj", None)  # ComfyUI's WanModel
        if isinstance(model, torch.nn.Module) and not graphable_block(model, inputs[0].device):
            self.enabled = False
            self.failure = "the model's weights move or change per call (low-VRAM loading, weight patches)"
            log.warning("[RTV] CUDA graphs off for this run: %s", self.failure)
            self.eager_calls += 1
            return executor(*inputs, None, None, transformer_options, **kwargs)
        entry.static_inputs = [t.clone() for t in inputs]
        transformer_options = {**transformer_options, BLOCK_GRAPHS_KEY: None}  # no graphs inside this one
        known = self.output_like.get(key)
        like = None if known is None else (torch.empty(known[0], dtype=known[1], device=inputs[0].device), *known)
        graph = torch.cuda.CUDAGraph()
        try:
            with time_embedding_on_device(), torch.cuda.graph(graph), capture_guards():
                entry.static_output = _recorded_output(
                    executor, entry.static_inputs, transformer_options, kwargs, like
                )
        except Exception as error:  # noqa: BLE001 - any capture failure: run eagerly from now on
            settle_failed_capture(graph, error, entry, self.variants)
            self.enabled, self.failure = False, f"{type(error).__name__}: {error}{_where(error)}"
            self.reset()
            torch.cuda.synchronize()
            log.warning(
                "[RTV] CUDA graphs off for this run (the model call cannot be captured): %s", self.failure
            )
            self.eager_calls += 1
            return executor(*inputs, None, None, transformer_options, **kwargs)
        entry.graph = graph
        self.captures += 1
        graph.replay()
        return entry.static_output.clone()

    def summary(self) -> str:
        text = f"CUDA graphs: {self.captures} captured, {self.replays} replayed, {self.eager_calls} eager calls"
        text += f" (off: {self.failure})" if self.failure else ""
        return text + (f"; {self.blocks.summary()}" if self.blocks is not None else "")


def apply_chunk_graphs(model, graph: ChunkGraph):
    """A clone of ``model`` whose diffusion model calls go through ``graph`` (innermost wrapper)."""
    m = model.clone()
    m.add_wrapper_with_key(patcher_extension.WrappersMP.DIFFUSION_MODEL, PATCH_KEY, graph.wrapper)
    if graph.blocks is not None:  # read by the fused block forwards (patches/fused_block.py)
        m.model_options.setdefault("transformer_options", {})[BLOCK_GRAPHS_KEY] = graph.blocks
    return m
