"""Replay the model calls of one causal chunk from a CUDA graph (host-bound few-step sampling).

A Self-Forcing chunk runs the diffusion model 5 times (4 steps + the cache pass) on the same shapes,
the same cache slots and the same Python decisions (grid, block marks, cached text K/V); only the
latents and the timestep change. The sampler is bound by host time (about 1000 attention calls and
many small kernels per 81-frame video, bench/notes_monarch_triton.md), so the first call of a chunk
runs eagerly (it tunes kernels and fills lazily built caches), the second is captured into a CUDA
graph, and every later call copies its inputs into the graph's static tensors and replays it.

Installed as the innermost DIFFUSION_MODEL wrapper, so the KV cache's and Monarch's per-call Python
bookkeeping still runs every call; counters incremented *inside* the forward (attention calls
replaced) count the eager and captured calls only. Anything that cannot be captured (a device sync,
weights streamed from the CPU, a host-to-device copy) makes the capture fail: the chunk then runs
eagerly and graphs stay off for the rest of the run, with one log line.
"""

from __future__ import annotations

import logging

import comfy.patcher_extension as patcher_extension
import torch

log = logging.getLogger(__name__)
PATCH_KEY = "rtv_chunk_cuda_graph"


class ChunkGraph:
    """The graph of the current chunk; ``reset`` before each chunk (its shapes or cache slots change)."""

    def __init__(self):
        self.enabled = True
        self.failure: str | None = None
        self.replays = 0
        self.captures = 0
        self.reset()

    def reset(self) -> None:
        self.graph = None
        self.key = None
        self.calls = 0
        self.static_inputs: list[torch.Tensor] = []
        self.static_output = None

    def wrapper(self, executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                transformer_options=None, **kwargs):  # fmt: skip
        transformer_options = {} if transformer_options is None else transformer_options
        plain = clip_fea is None and time_dim_concat is None and not kwargs and context is not None
        if not (self.enabled and plain and x.is_cuda):
            return executor(x, timestep, context, clip_fea, time_dim_concat, transformer_options, **kwargs)
        key = tuple((t.shape, t.dtype, t.device) for t in (x, timestep, context))
        if key != self.key:
            self.reset()
            self.key = key
        self.calls += 1
        if self.calls == 1:  # eager: autotuning, cuDNN plans, the chunk's text K/V
            return executor(x, timestep, context, None, None, transformer_options)
        if self.graph is None:
            return self._capture_and_run(executor, (x, timestep, context), transformer_options)
        for static, value in zip(self.static_inputs, (x, timestep, context)):
            static.copy_(value)
        self.graph.replay()
        self.replays += 1
        return self.static_output.clone()

    def _capture_and_run(self, executor, inputs, transformer_options):
        self.static_inputs = [t.clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.static_output = executor(*self.static_inputs, None, None, transformer_options)
        except Exception as error:  # noqa: BLE001 - any capture failure: run eagerly from now on
            self.enabled, self.failure = False, f"{type(error).__name__}: {error}"
            self.reset()
            torch.cuda.synchronize()
            log.warning(
                "[RTV] CUDA graphs off for this run (the model call cannot be captured): %s", self.failure
            )
            return executor(*inputs, None, None, transformer_options)
        self.graph = graph
        self.captures += 1
        graph.replay()
        return self.static_output.clone()


def apply_chunk_graphs(model, graph: ChunkGraph):
    """A clone of ``model`` whose diffusion model calls go through ``graph`` (innermost wrapper)."""
    m = model.clone()
    m.add_wrapper_with_key(patcher_extension.WrappersMP.DIFFUSION_MODEL, PATCH_KEY, graph.wrapper)
    return m
