"""Per-block K/V cache for causal chunk-wise generation with ComfyUI's Wan model (Self-Forcing, CausVid).

A causal video is generated a chunk of latent frames at a time; the chunk's queries attend to the keys
of every earlier frame still in the cache plus its own (bidirectional within the chunk, no mask).
Hooks on a model clone, never edits of ComfyUI:

- object patches of every block's ``self_attn.forward``: the same math as ``WanSelfAttention.forward``
  (qk-norm, RoPE), but the chunk's keys (after RoPE, at their global frame index) and values are
  written into the block's cache slots right after the cached frames, and attention runs over
  cached + current keys through ComfyUI's ``optimized_attention``, marked as video self-attention
  (``BLOCK_MARK``) so that an RTV_MonarchAttention patch serves it in chunk mode. Every call of a
  chunk (each denoising step and the clean pass) overwrites the same slots; ``end_chunk`` after the
  clean pass makes them part of the cache.
- object patches of every block's ``cross_attn.forward`` (text-to-video): the text K/V of a block are
  computed once and reused while the text context stays the same (compared by value: ComfyUI builds a
  new context tensor for every call).
- object patches of every block's ``forward`` (``patches/fused_block.py``): the block's norms and
  residuals in 3 fused passes instead of 10 kernels (the sampler is bound by host time per kernel).
- a DIFFUSION_MODEL wrapper that checks each call against the chunk the sampler announced.
- the global time index of ``patches/rope.py``: the chunk's frames get RoPE positions first..first+n-1.

Rolling window (Self-Forcing's ``local_attn_size`` / ``sink_size``): the cache holds at most
``capacity_frames`` latent frames including the current chunk. When a new chunk does not fit, the oldest
frames after the first ``sink_frames`` are evicted and the rest shift left, so memory stays flat while
global frame indices keep growing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import comfy.patcher_extension as patcher_extension
import torch
from comfy.ldm.modules.attention import optimized_attention

from .cuda_graphs import time_embedding_on_device
from .fused_block import fuse_wan_blocks
from .rope import apply_frame_positions
from .self_attention import norm_rope, projected_marked_forward, self_attention_marked

KV_CACHE_KEY = "rtv_kv_cache"
PATCH_KEY = "rtv_kv_cache"
log = logging.getLogger("RealtimeVideo")


@dataclass
class KVCacheStats:
    self_attention_calls: int = 0
    calls_with_cached_keys: int = 0  # a query chunk against more key frames than its own
    max_key_frames: int = 0
    text_kv_computed: int = 0
    text_kv_reused: int = 0


class KVCacheState:
    """Cache of one causal generation run, driven by the sampler and read by the patched blocks.

    Sampler protocol per chunk: ``begin_chunk(first_frame, frames)``, any number of model calls on
    exactly those frames (denoising steps, then the clean pass at t = 0), ``end_chunk()``.
    """

    def __init__(self, capacity_frames: int, sink_frames: int = 0):
        if capacity_frames < 1 or sink_frames < 0 or sink_frames >= capacity_frames:
            raise ValueError(
                f"[RTV] KV cache: need capacity_frames >= 1 and 0 <= sink_frames < capacity_frames, "
                f"got {capacity_frames} and {sink_frames}"
            )
        self.capacity_frames = capacity_frames
        self.sink_frames = sink_frames
        self.positions = None  # patches.rope.FramePositions of the model clone, set by apply_kv_cache
        self.stats = KVCacheStats()
        self.reset()

    def __deepcopy__(self, memo):
        return self

    def reset(self) -> None:
        """Forget everything (a new video)."""
        self.cached_frames: list[int] = []  # global latent frame index of each cached frame, in slot order
        self.chunk: tuple[int, int] | None = None  # (first global frame, frames) of the chunk being generated
        self.calls_in_chunk = 0
        self.frame_tokens: int | None = None
        self.self_kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.text_kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.text_context: torch.Tensor | None = None
        self.stats = KVCacheStats()

    def release_memory(self) -> None:
        """Free the cache tensors (end of a run, or an interrupt); statistics and frame indices stay."""
        self.self_kv, self.text_kv, self.text_context = {}, {}, None
        self.chunk = None

    # ---------------------------------------------------------------------------- sampler side
    def begin_chunk(self, first_frame: int, frames: int) -> None:
        if self.chunk is not None:
            raise RuntimeError("[RTV] KV cache: begin_chunk before the previous chunk ended")
        if frames > self.capacity_frames - min(self.sink_frames, len(self.cached_frames)):
            raise ValueError(
                f"[RTV] KV cache of {self.capacity_frames} frames ({self.sink_frames} sink) cannot "
                f"take a chunk of {frames} latent frames"
            )
        if self.cached_frames and first_frame <= self.cached_frames[-1]:
            raise ValueError(
                f"[RTV] KV cache: chunk at frame {first_frame} does not follow the cached frames "
                f"(last {self.cached_frames[-1]})"
            )
        overflow = len(self.cached_frames) + frames - self.capacity_frames
        if overflow > 0:
            self._evict(overflow)
        self.chunk = (first_frame, frames)
        self.calls_in_chunk = 0
        if self.positions is not None:
            self.positions.positions = torch.arange(first_frame, first_frame + frames, dtype=torch.float32)

    def end_chunk(self) -> None:
        """The chunk's last call (the clean pass) wrote its slots: they become cached frames."""
        if self.chunk is None or self.calls_in_chunk == 0:
            raise RuntimeError("[RTV] KV cache: end_chunk without a model call on the chunk")
        first, frames = self.chunk
        self.cached_frames.extend(range(first, first + frames))
        self.chunk = None

    def layout(self) -> tuple:
        """What a model call of the current chunk reads and writes where: the chunk's frames and slots
        after the cached ones (equal for every chunk of a full rolling window)."""
        return (self.chunk[1] if self.chunk else None, len(self.cached_frames), self.capacity_frames)

    def cache_bytes(self) -> int:
        tensors = [t for pair in (*self.self_kv.values(), *self.text_kv.values()) for t in pair]
        return sum(t.numel() * t.element_size() for t in tensors)

    def _evict(self, count: int) -> None:
        """Drop the ``count`` oldest frames after the sinks; later frames move left (Self-Forcing's roll)."""
        keep = min(self.sink_frames, len(self.cached_frames))
        ft = self.frame_tokens or 0
        moved = len(self.cached_frames) - keep - count
        for k_buf, v_buf in self.self_kv.values():
            for buf in (k_buf, v_buf):
                src = buf[:, (keep + count) * ft : (keep + count + moved) * ft].clone()
                buf[:, keep * ft : (keep + moved) * ft] = src
        self.cached_frames = self.cached_frames[:keep] + self.cached_frames[keep + count :]

    # ---------------------------------------------------------------------------- model side
    def begin_call(self, frames: int, frame_tokens: int, context: torch.Tensor | None) -> None:
        if self.chunk is None:
            raise RuntimeError(
                "[RTV] KV cache: model called outside a chunk (the causal sampler drives this model)"
            )
        if frames != self.chunk[1]:
            raise ValueError(
                f"[RTV] KV cache: model called on {frames} latent frames, the chunk has {self.chunk[1]}"
            )
        if self.frame_tokens is None:
            self.frame_tokens = frame_tokens
        elif frame_tokens != self.frame_tokens:
            raise ValueError("[RTV] KV cache: the frame size changed within one video")
        previous = self.text_context
        same_text = (
            context is not None
            and previous is not None
            and context.shape == previous.shape
            and context.dtype == previous.dtype
            and context.device == previous.device
            # One sampling run (a chunk) keeps its conditioning, so the values are compared on the
            # chunk's first call only: torch.equal syncs the device, which would stall every step.
            and (self.calls_in_chunk > 0 or torch.equal(context, previous))
        )
        if not same_text:
            self.text_kv = {}
            self.text_context = context
        self.calls_in_chunk += 1

    def self_attention_slots(
        self, block: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block's slots for the chunk's keys and values (shaped like k, v [B, tokens, C]) and the
        cached + current keys and values they complete; the caller writes the slots."""
        ft = self.frame_tokens
        buffers = self.self_kv.get(block)
        if buffers is None:
            shape = (k.shape[0], self.capacity_frames * ft, k.shape[-1])
            buffers = (k.new_empty(shape), v.new_empty(shape))
            self.self_kv[block] = buffers
        k_buf, v_buf = buffers
        if k_buf.shape[0] != k.shape[0] or k_buf.dtype != k.dtype or k_buf.device != k.device:
            raise ValueError(
                f"[RTV] KV cache: block {block} was called with batch {k.shape[0]} {k.dtype} on "
                f"{k.device}, the cache holds batch {k_buf.shape[0]} {k_buf.dtype} on {k_buf.device} "
                "(the causal sampler runs one prompt without CFG)"
            )
        start = len(self.cached_frames) * ft
        end = start + k.shape[1]
        self.stats.self_attention_calls += 1
        key_frames = end // ft
        self.stats.max_key_frames = max(self.stats.max_key_frames, key_frames)
        if start > 0:
            self.stats.calls_with_cached_keys += 1
        return k_buf[:, start:end], v_buf[:, start:end], k_buf[:, :end], v_buf[:, :end]

    def self_attention_kv(
        self, block: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the chunk's k, v [B, tokens, C] into the block's slots; return cached + current keys/values."""
        k_slot, v_slot, keys, values = self.self_attention_slots(block, k, v)
        k_slot.copy_(k)
        v_slot.copy_(v)
        return keys, values

    def text_kv_for(self, block: int, compute) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self.text_kv.get(block)
        if cached is None:
            cached = compute()
            self.text_kv[block] = cached
            self.stats.text_kv_computed += 1
        else:
            self.stats.text_kv_reused += 1
        return cached

    # ---------------------------------------------------------------------------- hooks
    def diffusion_model_wrapper(self, executor, *args, **kwargs):
        x, context = args[0], (args[2] if len(args) > 2 else kwargs.get("context"))
        time_dim_concat = args[4] if len(args) > 4 else kwargs.get("time_dim_concat")
        if time_dim_concat is not None or "reference_latent" in kwargs:
            raise ValueError(
                "[RTV] the causal sampler does not support time-concatenated or reference latents"
            )
        dm = executor.class_obj
        pt, ph, pw = dm.patch_size
        frames = -(-x.shape[2] // pt)
        self.begin_call(frames, (-(-x.shape[3] // ph)) * (-(-x.shape[4] // pw)), context)
        if not x.is_cuda:
            return executor(*args, **kwargs)
        with time_embedding_on_device():  # no host-device sync per call (same values)
            return executor(*args, **kwargs)


def cached_self_attention(attn, block: int):
    """Replacement for ``blocks[block].self_attn.forward`` (``attn``: that WanSelfAttention)."""

    uncached = projected_marked_forward(attn, block)

    def forward(x, freqs, transformer_options=None, **kwargs):
        transformer_options = transformer_options or {}
        state = transformer_options.get(KV_CACHE_KEY)
        if state is None:
            return uncached(x, freqs, transformer_options)
        n = attn.num_heads
        q = norm_rope(attn.norm_q, attn.q(x), freqs, n)
        k, v = attn.k(x), attn.v(x)
        # the keys are normed and rotated straight into the cache slots
        k_slot, v_slot, keys, values = state.self_attention_slots(block, k, v)
        norm_rope(attn.norm_k, k, freqs, n, out=k_slot)
        v_slot.copy_(v)
        return attn.o(self_attention_marked(attn, q, keys, values, block, transformer_options))

    return forward


def cached_text_cross_attention(attn, block: int):
    """Replacement for ``blocks[block].cross_attn.forward`` of a text-to-video block."""

    def forward(x, context, transformer_options=None, **kwargs):
        transformer_options = transformer_options or {}
        state = transformer_options.get(KV_CACHE_KEY)

        def text_kv():
            return attn.norm_k(attn.k(context)), attn.v(context)

        k, v = state.text_kv_for(block, text_kv) if state is not None else text_kv()
        q = attn.norm_q(attn.q(x))
        out = optimized_attention(q, k, v, heads=attn.num_heads, transformer_options=transformer_options)
        return attn.o(out)

    return forward


def check_causal_wan(diffusion_model) -> None:
    """Raise a ValueError unless this is a plain Wan text-to-video DiT (what Self-Forcing / CausVid are)."""
    from comfy.ldm.wan.model import WanModel, WanT2VCrossAttention

    if type(diffusion_model) is not WanModel or getattr(diffusion_model, "model_type", None) != "t2v":
        kind = type(diffusion_model).__name__ + (
            f" ({diffusion_model.model_type})" if hasattr(diffusion_model, "model_type") else ""
        )
        raise ValueError(
            f"[RTV] the causal sampler runs chunk-wise Wan 2.1 text-to-video models (Self-Forcing, "
            f"CausVid; Wan 2.1 T2V 1.3B architecture); this model is {kind}."
        )
    if not all(type(b.cross_attn) is WanT2VCrossAttention for b in diffusion_model.blocks):
        raise ValueError("[RTV] the causal sampler expects Wan's text cross-attention in every block")


def apply_kv_cache(model, state: KVCacheState):
    """A clone of ``model`` (a ComfyUI ModelPatcher of a Wan T2V model) whose blocks use ``state``."""
    diffusion_model = model.get_model_object("diffusion_model")
    check_causal_wan(diffusion_model)
    m, state.positions = apply_frame_positions(model)
    m.model_options.setdefault("transformer_options", {})[KV_CACHE_KEY] = state
    for i in range(len(diffusion_model.blocks)):
        path = f"diffusion_model.blocks.{i}"
        self_path = f"{path}.self_attn.forward"
        existing = m.object_patches.get(self_path)
        if existing is not None and "_marked_forward" not in getattr(existing, "__qualname__", ""):
            log.warning("[RTV] causal sampler: replacing another patch of %s (its effect is lost)", self_path)
        m.add_object_patch(self_path, cached_self_attention(m.get_model_object(f"{path}.self_attn"), i))
        m.add_object_patch(
            f"{path}.cross_attn.forward",
            cached_text_cross_attention(m.get_model_object(f"{path}.cross_attn"), i),
        )
    fuse_wan_blocks(m)  # norms and residuals fused: fewer launches per block
    m.add_wrapper_with_key(
        patcher_extension.WrappersMP.DIFFUSION_MODEL, PATCH_KEY, state.diffusion_model_wrapper
    )
    return m
