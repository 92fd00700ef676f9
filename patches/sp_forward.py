"""One rank's share of a sequence-parallel forward of ComfyUI's ``WanModel`` (Ulysses style).

Every rank runs this with the same call inputs: it embeds the latent (a patchify convolution, small
next to the blocks), keeps its contiguous token shard (``sp_layout``), and runs every block on that
shard: modulation, norms, cross-attention and the MLP are per token and need nothing from other
ranks; self-attention projects q, k, v locally, rotates them with RoPE at the shard's global
positions, and an all-to-all (``sp_comm``) turns (my tokens, all heads) into (all tokens, my heads).
Attention then sees the whole sequence for its heads, so the token grid is intact for Monarch
attention (the model's ``optimized_attention_override``), and a rank KV cache stores its head shard.
The inverse all-to-all brings the output back to the shard; the head's output shards are gathered.

The math is ComfyUI 0.3.75's ``WanModel._forward`` / ``forward_orig`` / ``WanAttentionBlock.forward``
for the plain Wan 2.1/2.2 DiT (text-to-video, image-to-video, first-last-frame), written out here
because its blocks call self-attention on the whole sequence. Per-instance object patches of other
nodes on the blocks are not part of it (``check_sequence_parallel_call`` refuses block replacement
patches rather than skip them silently).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import comfy.ldm.common_dit
import comfy.model_management
import torch
from comfy.ldm.modules.attention import optimized_attention
from comfy.ldm.wan.model import WanModel, repeat_e, sinusoidal_embedding_1d

from .fused_block import fusable_call, fused_block_steps
from .kv_cache import KV_CACHE_KEY, KVCacheState, cached_text_cross_attention
from .self_attention import BLOCK_MARK, norm_rope
from .sp_cache import KVSnapshot, RankKVCache
from .sp_comm import SPComm
from .sp_layout import RopeAxes, ShardLayout, check_heads, shard_token_positions

OVERRIDE_KEY = "optimized_attention_override"
ROPE_CACHE_SIZE = 16  # shard RoPE tables kept per rank (one per grid / chunk position)


@dataclass
class SPCall:
    """What rank 0 sends every rank with a model call, besides the tensors (plain, picklable)."""

    frame_positions: tuple[float, ...] | None = None  # global latent index per frame (patches/rope.py)
    rope_axes: RopeAxes = RopeAxes()
    attention_override: object = None  # the model's optimized_attention_override (e.g. Monarch)
    attention_state: dict = field(default_factory=dict)  # per-call transformer_options it reads
    kv: KVSnapshot | None = None

    def attention_options(self, block: int) -> dict:
        options = {**self.attention_state, BLOCK_MARK: block}
        if self.attention_override is not None:
            options[OVERRIDE_KEY] = self.attention_override
        return options


class RankRuntime:
    """What a rank keeps between calls: its place in the group, its KV cache, its RoPE tables."""

    def __init__(self, comm: SPComm):
        self.comm = comm
        self.kv = RankKVCache()
        self._rope: OrderedDict = OrderedDict()

    def shard_freqs(self, dm, grid: tuple[int, int, int], call: SPCall, device, dtype) -> torch.Tensor:
        """RoPE of this rank's shard at global positions, computed once per (grid, positions)."""
        key = (grid, call.frame_positions, call.rope_axes, str(device), dtype)
        freqs = self._rope.get(key)
        if freqs is None:
            ids = shard_token_positions(grid, self.comm.rank, self.comm.world, call.frame_positions, call.rope_axes)
            # ComfyUI builds the position ids in the model's dtype: same rounding here
            freqs = dm.rope_embedder(ids.to(device=device, dtype=dtype).unsqueeze(0)).movedim(1, 2)
            self._rope[key] = freqs
            while len(self._rope) > ROPE_CACHE_SIZE:
                self._rope.popitem(last=False)
        else:
            self._rope.move_to_end(key)
        return freqs


def check_sequence_parallel_model(dm, world: int) -> None:
    """Raise a ValueError unless ``dm`` is a plain WanModel whose heads split over ``world`` ranks."""
    if type(dm) is not WanModel:
        raise ValueError(
            "[RTV] sequence parallel runs the plain Wan 2.1/2.2 DiT (text-to-video, image-to-video, "
            f"first-last-frame); this model is {type(dm).__name__}."
        )
    check_heads(dm.num_heads, world)


def check_sequence_parallel_call(time_dim_concat, transformer_options: dict, extra: dict) -> None:
    if time_dim_concat is not None or extra.get("reference_latent") is not None:
        raise ValueError(
            "[RTV] sequence parallel does not support time-concatenated or reference latents "
            "(Phantom, reference-image models); remove the sequence-parallel node for this model"
        )
    unknown = sorted(k for k, v in extra.items() if v is not None and k != "reference_latent")
    if unknown:
        raise ValueError(f"[RTV] sequence parallel does not support these model inputs: {', '.join(unknown)}")
    replaced = (transformer_options.get("patches_replace") or {}).get("dit") or {}
    if replaced:
        raise ValueError(
            "[RTV] sequence parallel cannot run block replacement patches (e.g. skip-layer guidance) on "
            f"its shards: {sorted(replaced)}; remove them or the sequence-parallel node"
        )


def sp_wan_forward(dm, x, timestep, context, clip_fea, call: SPCall, rt: RankRuntime) -> torch.Tensor:
    """This rank's part of ``WanModel._forward``; every rank returns the full output."""
    comm = rt.comm
    bs, c, t, h, w = x.shape
    x = comfy.ldm.common_dit.pad_to_patch_size(x, dm.patch_size)
    x = dm.patch_embedding(x.float()).to(x.dtype)
    grid = tuple(int(s) for s in x.shape[2:])
    frame_tokens = grid[1] * grid[2]
    x = x.flatten(2).transpose(1, 2)
    layout = ShardLayout(x.shape[1], comm.world)
    x = layout.shard(x, comm.rank)

    e = dm.time_embedding(sinusoidal_embedding_1d(dm.freq_dim, timestep.flatten()).to(dtype=x.dtype))
    e = e.reshape(timestep.shape[0], -1, e.shape[-1])
    e0 = dm.time_projection(e).unflatten(2, (6, dm.dim))
    if e.shape[1] > 1:  # per-frame timesteps: expand to tokens and shard (repeat_e leaves them as they are)
        e = layout.shard(e.repeat_interleave(frame_tokens, dim=1), comm.rank)
        e0 = layout.shard(e0.repeat_interleave(frame_tokens, dim=1), comm.rank)

    kv = rt.kv.sync(call.kv, grid[0], frame_tokens, context) if call.kv is not None else None
    context = dm.text_embedding(context)
    context_img_len = None
    if clip_fea is not None:
        if dm.img_emb is not None:
            context = torch.concat([dm.img_emb(clip_fea), context], dim=1)
        context_img_len = clip_fea.shape[-2]

    freqs = rt.shard_freqs(dm, grid, call, x.device, x.dtype)
    for i, block in enumerate(dm.blocks):
        x = sp_block(block, i, x, e0, freqs, context, context_img_len, layout, call, rt, kv)
    x = dm.head(x, e)
    x = comm.gather_sequence(x)[:, : layout.tokens]
    return dm.unpatchify(x, grid)[:, :, :t, :h, :w]


def sp_block(block, index: int, x, e, freqs, context, context_img_len, layout, call, rt, kv):
    """``WanAttentionBlock.forward`` on a token shard, self-attention through the all-to-all."""
    if fusable_call(block, e):  # the norm and residual steps in 3 passes (patches/fused_block.py)
        return fused_block_steps(
            block, x, e,
            lambda h: sp_self_attention(block.self_attn, index, h, freqs, layout, call, rt, kv),
            lambda h: _cross_attention(block.cross_attn, index, h, context, context_img_len, kv),
        )  # fmt: skip
    modulation = comfy.model_management.cast_to(block.modulation, dtype=x.dtype, device=x.device)
    e = (modulation + e).chunk(6, dim=1) if e.ndim < 4 else (modulation.unsqueeze(0) + e).unbind(2)
    x = x.contiguous()
    y = sp_self_attention(
        block.self_attn, index, torch.addcmul(repeat_e(e[0], x), block.norm1(x), 1 + repeat_e(e[1], x)),
        freqs, layout, call, rt, kv,
    )
    x = torch.addcmul(x, y, repeat_e(e[2], x))
    x = x + _cross_attention(block.cross_attn, index, block.norm3(x), context, context_img_len, kv)
    y = block.ffn(torch.addcmul(repeat_e(e[3], x), block.norm2(x), 1 + repeat_e(e[4], x)))
    return torch.addcmul(x, y, repeat_e(e[5], x))


def sp_self_attention(attn, block: int, x, freqs, layout: ShardLayout, call: SPCall, rt: RankRuntime,
                      kv: KVCacheState | None):
    comm = rt.comm
    b, s, n, d = *x.shape[:2], attn.num_heads, attn.head_dim
    qkv = x.new_empty(3, b, s, n * d)  # q and k are normed and rotated into it, no stacking copy
    norm_rope(attn.norm_q, attn.q(x), freqs, n, out=qkv[0])
    norm_rope(attn.norm_k, attn.k(x), freqs, n, out=qkv[1])
    qkv[2].copy_(attn.v(x))
    heads = n // comm.world
    # all tokens, my heads; the pad tokens at the end of the sequence are dropped
    q, k, v = comm.seq_to_heads(qkv.view(3, b, s, n, d))[:, :, : layout.tokens].unbind(0)
    q, k, v = (t.reshape(b, layout.tokens, heads * d) for t in (q, k, v))
    if kv is not None:
        k, v = kv.self_attention_kv(block, k, v)
    out = optimized_attention(q, k, v, heads=heads, transformer_options=call.attention_options(block))
    out = out.view(b, layout.tokens, heads, d)
    if layout.padded_tokens > layout.tokens:
        out = torch.cat([out, out.new_zeros(b, layout.padded_tokens - layout.tokens, heads, d)], dim=1)
    return attn.o(comm.heads_to_seq(out).reshape(b, s, n * d))


def _cross_attention(attn, block: int, x, context, context_img_len, kv: KVCacheState | None):
    if kv is not None:  # text K/V computed once per block and prompt, as the one-GPU causal sampler does
        return cached_text_cross_attention(attn, block)(x, context, transformer_options={KV_CACHE_KEY: kv})
    # the class's forward: instance patches of the main process's model are not in the worker copies
    return type(attn).forward(attn, x, context, context_img_len=context_img_len, transformer_options={})
