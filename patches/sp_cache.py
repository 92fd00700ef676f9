"""Each sequence-parallel rank's KV cache for causal chunk-wise generation.

After the all-to-all a rank holds the keys and values of the *full* sequence for its own heads, so
each rank caches its head shard (cached + current frames, [B, frames * frame_tokens, H / W * D] per
block): attention of a chunk against the cache then needs no further communication, and the cache
of W ranks together is exactly the one-GPU cache.

The cache bookkeeping (which global frames are cached, rolling-window eviction with sinks) belongs to
the sampler's ``KVCacheState`` in the main process. Every model call carries a ``KVSnapshot`` of it,
and each rank replays the same protocol on a ``KVCacheState`` of its own (``RankKVCache.sync``): a new
chunk ends the previous one and begins the next with the same eviction, an empty snapshot restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .kv_cache import KVCacheState


@dataclass(frozen=True)
class KVSnapshot:
    capacity_frames: int
    sink_frames: int
    chunk: tuple[int, int]  # (first global latent frame, frames) of the chunk being generated
    cached_frames: tuple[int, ...]  # global latent frames in the cache, slot order, before this chunk

    @classmethod
    def of(cls, state: KVCacheState) -> KVSnapshot:
        if state.chunk is None:
            raise RuntimeError("[RTV] sequence parallel: KV-cached model called outside a chunk")
        return cls(state.capacity_frames, state.sink_frames, tuple(state.chunk), tuple(state.cached_frames))


class RankKVCache:
    """One rank's cache, kept in step with the sampler's bookkeeping by the snapshot of each call."""

    def __init__(self):
        self.state: KVCacheState | None = None

    def sync(self, snap: KVSnapshot, frames: int, frame_tokens: int, context: torch.Tensor | None) -> KVCacheState:
        st = self.state
        if st is None or (st.capacity_frames, st.sink_frames) != (snap.capacity_frames, snap.sink_frames):
            st = self.state = KVCacheState(snap.capacity_frames, snap.sink_frames)
        cached = list(snap.cached_frames)
        if st.chunk is not None and (st.chunk != snap.chunk or st.cached_frames != cached):
            st.end_chunk()  # the previous chunk's last call (its clean pass) wrote its slots
        if st.chunk is None:
            if not cached or (st.cached_frames and snap.chunk[0] <= st.cached_frames[-1]):
                st.reset()  # a new video
            st.begin_chunk(*snap.chunk)
            if st.cached_frames != cached:
                raise RuntimeError(
                    f"[RTV] sequence parallel: a rank's KV cache holds frames {st.cached_frames}, the "
                    f"sampler's holds {cached}; restart the run (the worker pool restarts with it)"
                )
        st.begin_call(frames, frame_tokens, context)
        return st

    def release(self) -> None:
        if self.state is not None:
            self.state.release_memory()
            self.state = None
