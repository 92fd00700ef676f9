"""Sequence-parallel generation for ComfyUI's Wan models across GPUs (or CPU processes).

Ulysses-style sequence parallelism with a global time index (Causal-RoPE SP, arXiv 2603.06664): the
video's tokens are split into contiguous shards, one per rank; around self-attention an all-to-all
swaps the token shard for a head shard; RoPE of every shard is computed from the tokens' global
(frame, row, column) positions. Chunks of a causal video stay sequential, each chunk's tokens are
processed in parallel and every rank keeps its head shard of the KV cache.

Hooks on a model clone (all undone by using the unpatched MODEL):

- an object patch of ``diffusion_model._forward``: the innermost step of ``WanModel.forward``, so the
  other DIFFUSION_MODEL wrappers (Monarch attention's grid and step, the causal sampler's KV-cache
  bookkeeping) have run on rank 0 before. It sends the call to the worker pool and runs rank 0's
  shard (``sp_pool`` / ``sp_forward``).
- an OUTER_SAMPLE wrapper: records which weights this run uses (LoRAs change them; the pool sends
  new weights only then) and stops the pool when a run ends with an error or an interrupt.

One pool per process, started at the first model call and stopped by ``shutdown_pool`` (the node runs
it when it executes again), by an error or interrupt, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
from dataclasses import dataclass

import comfy.patcher_extension as patcher_extension
import torch

from .attention import STATE_KEY
from .kv_cache import KV_CACHE_KEY
from .rope import FRAME_POSITIONS_KEY
from .sp_cache import KVSnapshot
from .sp_forward import OVERRIDE_KEY, SPCall, check_sequence_parallel_call, check_sequence_parallel_model
from .sp_layout import RopeAxes
from .sp_pool import PoolConfig, WorkerPool

PATCH_KEY = "rtv_sequence_parallel"
BACKENDS = ("auto", "nccl", "gloo")
log = logging.getLogger("RealtimeVideo")

_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class SPSettings:
    ranks: int
    backend: str = "auto"  # auto: NCCL when the model runs on CUDA, gloo on the CPU
    timeout_s: float = 1800.0


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"[RTV] sequence parallel backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(f"[RTV] sequence parallel: backend nccl needs CUDA GPUs; the model runs on {device}. "
                         "Use backend gloo (CPU processes) or auto.")
    if backend == "gloo" and device.type != "cpu":
        raise ValueError(f"[RTV] sequence parallel: backend gloo runs CPU processes; the model runs on {device}. "
                         "Use nccl or auto for GPUs.")
    return backend


def check_ranks(ranks: int, backend: str, device: torch.device) -> None:
    backend = resolve_backend(backend, device)
    if ranks < 1:
        raise ValueError(f"[RTV] sequence parallel: ranks must be at least 1, got {ranks}")
    if backend == "nccl" and ranks > torch.cuda.device_count():
        raise ValueError(f"[RTV] sequence parallel over {ranks} GPUs: {torch.cuda.device_count()} are visible; "
                         "lower 'ranks' (0 = all visible GPUs)")


def default_ranks(device: torch.device, heads: int, cpu_ranks: int = 2) -> int:
    """Every visible GPU (``cpu_ranks`` processes on a CPU), lowered to the largest count dividing ``heads``."""
    ranks = max(1, torch.cuda.device_count() if device.type == "cuda" else cpu_ranks)
    while heads % ranks:
        ranks -= 1
    return ranks


def current_pool() -> WorkerPool | None:
    return _pool


def shutdown_pool() -> None:
    """Stop the worker pool, if one runs (idempotent)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


atexit.register(shutdown_pool)


def pool_for(settings: SPSettings, device: torch.device) -> WorkerPool:
    """The running pool if it fits these settings, else a new one (the old one stops first)."""
    global _pool
    backend = resolve_backend(settings.backend, device)
    config = PoolConfig(settings.ranks, backend, device, max(1, torch.get_num_threads() // settings.ranks),
                        settings.timeout_s)
    with _pool_lock:
        pool = _pool
        if pool is not None and pool.healthy and pool.config == config:
            return pool
    shutdown_pool()
    with _pool_lock:
        _pool = WorkerPool(config).start()
        return _pool


def call_settings(dm, x, transformer_options: dict) -> SPCall:
    """The plain settings of one model call that every rank needs (read from rank 0's options)."""
    to = transformer_options
    frames = math.ceil(x.shape[2] / dm.patch_size[0])
    holder = to.get(FRAME_POSITIONS_KEY)
    positions = getattr(holder, "positions", None)
    state = to.get(KV_CACHE_KEY)
    return SPCall(
        frame_positions=tuple(float(p) for p in positions) if positions is not None and len(positions) == frames else None,
        rope_axes=RopeAxes.from_rope_options(to.get("rope_options")),
        attention_override=to.get(OVERRIDE_KEY),
        attention_state={STATE_KEY: to[STATE_KEY]} if STATE_KEY in to else {},
        kv=KVSnapshot.of(state) if state is not None else None,
    )


class SequenceParallelPatch:
    """The hooks of one RTV_SequenceParallel node; plain callables survive ModelPatcher clones."""

    def __init__(self, settings: SPSettings):
        self.settings = settings
        self.weights_version = None

    def __deepcopy__(self, memo):
        return self

    def outer_sample_wrapper(self, executor, *args, **kwargs):
        self.weights_version = getattr(executor.class_obj.model_patcher, "patches_uuid", None)
        try:
            return executor(*args, **kwargs)
        except BaseException:
            shutdown_pool()  # an interrupt or error may leave the ranks mid-protocol: start clean next time
            raise

    def forward_for(self, dm):
        """Replacement for ``dm._forward`` (called by ``WanModel.forward`` after every wrapper)."""

        def forward(x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options=None, **kwargs):
            to = transformer_options or {}
            check_sequence_parallel_call(time_dim_concat, to, kwargs)
            pool = pool_for(self.settings, x.device)
            call = call_settings(dm, x, to)
            pool.sync_weights(dm, (id(dm), self.weights_version))
            out = pool.forward(dm, x, timestep, context, clip_fea, call)
            state = to.get(KV_CACHE_KEY)
            if state is not None and pool.runtime.kv.state is not None:
                state.stats = pool.runtime.kv.state.stats  # rank 0's counts (its head shard's calls)
            return out

        return forward


def apply_sequence_parallel(model, settings: SPSettings):
    """A clone of ``model`` (a ComfyUI ModelPatcher of a plain Wan model) that runs sequence-parallel."""
    import comfy.model_management

    dm = model.get_model_object("diffusion_model")
    check_sequence_parallel_model(dm, settings.ranks)
    check_ranks(settings.ranks, settings.backend, model.load_device or comfy.model_management.get_torch_device())
    m = model.clone()
    if settings.ranks == 1:
        return m
    patch = SequenceParallelPatch(settings)
    m.add_object_patch("diffusion_model._forward", patch.forward_for(dm))
    m.add_wrapper_with_key(patcher_extension.WrappersMP.OUTER_SAMPLE, PATCH_KEY, patch.outer_sample_wrapper)
    return m
