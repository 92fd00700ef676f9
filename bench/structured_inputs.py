"""Structured, video-like attention inputs for measuring approximations of attention (DESIGN.md 4.4).

No trained video weights are available, and random q/k with small norms give near-uniform
attention that hides every approximation error. These inputs follow the structure MonarchRT
describes for video attention, "periodic positional + sparse semantic + dense mixing":

* positional: a constant per-head vector rotated by Wan's 3D RoPE, so ``q.k`` is a sum of cosines
  of the (t, h, w) offsets, peaked at zero offset: separable locality in frame, row and column;
* content: a smooth spatio-temporal field (a few low-frequency waves drifting over time, i.e. moving
  texture) projected to q, k, v by per-head matrices, so similar content attracts attention;
* semantic spikes: some query tokens share a strong random direction with a few distant keys,
  placed in the RoPE channel pairs whose rotation over the whole grid stays small, so the match
  survives RoPE like real semantic matches do;
* dense mixing noise on q, k and v.

Strengths differ per head (positional heads, semantic heads, mixed heads). All in one function
so later benchmarks (Triton kernel accuracy, streaming) measure on the same inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ROPE_THETA = 10000.0
LOW_FREQUENCY_MAX_ANGLE = 0.3
"""A RoPE pair counts as position-invariant when it turns by less than this (radians) over the grid."""


@dataclass(frozen=True)
class StructureStrengths:
    """Logit sizes (after the D**-0.5 scale) of each component; per head they are multiplied by
    a random factor in ``[1 - head_spread, 1 + head_spread]`` (semantic) or its complement
    (positional), so some heads are positional and others semantic."""

    positional: float = 12.0
    content: float = 3.0
    semantic: float = 12.0
    noise: float = 0.5
    head_spread: float = 0.6
    semantic_query_fraction: float = 0.03
    semantic_keys_per_query: int = 3
    content_waves: int = 6
    value_content: float = 1.0
    value_noise: float = 0.5


def wan_rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Channels per axis (t, h, w) of Wan's 3D RoPE: 44, 42, 42 for head_dim 128."""
    per_axis = 2 * (head_dim // 6)
    return head_dim - 2 * per_axis, per_axis, per_axis


def wan_rope_angles(grid: tuple[int, int, int], head_dim: int, frame_offset: int = 0) -> Tensor:
    """Rotation angle of every channel pair at every token: ``[F*h*w, head_dim // 2]``, frame-major."""
    frames, height, width = grid
    positions = torch.meshgrid(
        torch.arange(frame_offset, frame_offset + frames, dtype=torch.float64),
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    angles = []
    for axis_dim, pos in zip(wan_rope_axes(head_dim), positions):
        freqs = ROPE_THETA ** (-torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim)
        angles.append(pos.reshape(-1, 1) * freqs)
    return torch.cat(angles, dim=-1)


def apply_wan_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate adjacent channel pairs ``(2i, 2i+1)`` of x ``[..., N, D]`` by ``angles [N, D/2]``."""
    pairs = x.to(torch.float64).unflatten(-1, (-1, 2))
    cos, sin = angles.cos().to(pairs.device), angles.sin().to(pairs.device)
    rotated = torch.stack(
        (pairs[..., 0] * cos - pairs[..., 1] * sin, pairs[..., 0] * sin + pairs[..., 1] * cos), dim=-1
    )
    return rotated.flatten(-2).to(x.dtype)


def low_frequency_pairs(grid: tuple[int, int, int], head_dim: int) -> Tensor:
    """Indices of RoPE pairs that turn by less than LOW_FREQUENCY_MAX_ANGLE across the whole grid."""
    extent = wan_rope_angles(tuple(max(2, n) for n in grid), head_dim)
    spread = extent.max(dim=0).values - extent.min(dim=0).values
    return torch.nonzero(spread < LOW_FREQUENCY_MAX_ANGLE).flatten()


def positional_pair_weights(head_dim: int, gen: torch.Generator) -> Tensor:
    """Per-pair share (summing to 1) of a head's positional logit, favouring fast-turning pairs.

    Each axis (t, h, w) gets a random share, so some heads are mostly temporal (same place in
    other frames), others spatial (own frame), as observed in video DiTs. Inside an axis, pairs are
    weighted by ``sqrt(frequency)``: slow pairs add a near-constant logit and no locality.
    """
    weights = []
    for axis_dim in wan_rope_axes(head_dim):
        freqs = ROPE_THETA ** (-torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim)
        w = torch.rand(axis_dim // 2, generator=gen, dtype=torch.float64) * freqs.sqrt()
        weights.append(w / w.sum() * (0.2 + torch.rand(1, generator=gen, dtype=torch.float64)))
    weights = torch.cat(weights)
    return weights / weights.sum()


def _content_field(grid: tuple[int, int, int], channels: int, waves: int, gen: torch.Generator) -> Tensor:
    """Smooth moving texture: ``[F*h*w, channels]``, unit variance per channel."""
    frames, height, width = grid
    f, y, x = torch.meshgrid(
        torch.arange(frames, dtype=torch.float64),
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    field = torch.zeros(frames, height, width, channels, dtype=torch.float64)
    for _ in range(waves):
        # wavelengths of a few to tens of tokens; drift of up to about a token per frame
        ky, kx = (torch.rand(2, generator=gen, dtype=torch.float64) * 2 - 1) * 0.6
        vy, vx = (torch.rand(2, generator=gen, dtype=torch.float64) * 2 - 1) * 1.0
        phase = ky * (y - vy * f) + kx * (x - vx * f) + 2 * math.pi * torch.rand(1, generator=gen).item()
        mix = torch.randn(2, channels, generator=gen, dtype=torch.float64)
        field += phase.cos()[..., None] * mix[0] + phase.sin()[..., None] * mix[1]
    field = field.reshape(-1, channels)
    return (field - field.mean(0)) / field.std(0).clamp_min(1e-12)


def structured_video_qkv(
    grid: tuple[int, int, int],
    *,
    query_frames: int | None = None,
    heads: int = 12,
    head_dim: int = 128,
    batch: int = 1,
    strengths: StructureStrengths | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor]:
    """q ``[B, H, Nq, D]`` (the last ``query_frames`` frames, default all), k and v ``[B, H, N, D]``.

    Keys and queries carry Wan 3D RoPE at absolute frame positions ``0 .. F-1``, as a KV cache
    would. Deterministic for a given seed; built in float64 on CPU, then moved.
    """
    s = strengths or StructureStrengths()
    gen = torch.Generator().manual_seed(seed)
    frames, height, width = grid
    tokens = frames * height * width
    query_tokens = (query_frames or frames) * height * width
    angles = wan_rope_angles(grid, head_dim)
    semantic_pairs = low_frequency_pairs(grid, head_dim)
    semantic_channels = torch.cat([2 * semantic_pairs, 2 * semantic_pairs + 1])
    sqrt_logit = head_dim**0.25  # a vector pair with q.k = x has scaled logit x / sqrt(D)

    qs, ks, vs = [], [], []
    for _ in range(batch):
        field = _content_field(grid, head_dim, s.content_waves, gen)
        for _ in range(heads):
            spread = (torch.rand(1, generator=gen).item() * 2 - 1) * s.head_spread
            positional_gain, semantic_gain = 1 - spread, 1 + spread

            # positional: |p_i|^2 summed over pairs = positional logit at zero offset (times sqrt D)
            pair_weight = positional_pair_weights(head_dim, gen) * s.positional * positional_gain
            p = torch.stack((pair_weight.sqrt(), torch.zeros_like(pair_weight)), -1).flatten() * sqrt_logit
            q = p.expand(tokens, head_dim).clone()
            k = p.expand(tokens, head_dim).clone()

            # content: q and k see correlated projections of the same field
            w_q = torch.randn(head_dim, head_dim, generator=gen, dtype=torch.float64) / head_dim**0.5
            w_k = (
                w_q
                + 0.5 * torch.randn(head_dim, head_dim, generator=gen, dtype=torch.float64) / head_dim**0.5
            )
            # field rows have |f|^2 ~ D and f W_q . f W_k ~ |f|^2, so the gain^2 * sqrt(D) is the logit
            content_gain = (s.content / head_dim**0.5) ** 0.5
            q += content_gain * field @ w_q
            k += content_gain * field @ w_k

            # semantic spikes in the near-position-invariant channels
            n_queries = max(1, round(s.semantic_query_fraction * query_tokens))
            for query in (
                tokens - query_tokens + torch.randperm(query_tokens, generator=gen)[:n_queries]
            ).tolist():
                u = torch.zeros(head_dim, dtype=torch.float64)
                u[semantic_channels] = torch.randn(
                    semantic_channels.numel(), generator=gen, dtype=torch.float64
                )
                u *= (s.semantic * semantic_gain) ** 0.5 * sqrt_logit / u.norm()
                q[query] += u
                for key in torch.randint(0, tokens, (s.semantic_keys_per_query,), generator=gen).tolist():
                    k[key] += u

            # iid entries of std sigma give noise-noise logits of std sigma^2
            noise_std = s.noise**0.5
            q += noise_std * torch.randn(tokens, head_dim, generator=gen, dtype=torch.float64)
            k += noise_std * torch.randn(tokens, head_dim, generator=gen, dtype=torch.float64)
            w_v = torch.randn(head_dim, head_dim, generator=gen, dtype=torch.float64) / head_dim**0.5
            v = s.value_content * field @ w_v + s.value_noise * torch.randn(
                tokens, head_dim, generator=gen, dtype=torch.float64
            )

            qs.append(apply_wan_rope(q, angles)[tokens - query_tokens :])
            ks.append(apply_wan_rope(k, angles))
            vs.append(v)
    shape = (batch, heads)
    q, k, v = (torch.stack(x).reshape(*shape, -1, head_dim) for x in (qs, ks, vs))
    return tuple(x.to(device=device, dtype=dtype).contiguous() for x in (q, k, v))


def attention_diagnostics(
    q: Tensor, k: Tensor, grid: tuple[int, int, int], *, sample: int = 256, seed: int = 0
) -> dict[str, float]:
    """How structured the dense attention is, on a sample of queries (cheap at any size).

    ``normalized_entropy``: entropy / log(N), 1 = uniform; ``top1``: mean largest probability;
    ``own_frame_mass``: mean attention mass on the query's own frame; ``top32_mass``: mass of the
    32 largest keys (sparse part).
    """
    gen = torch.Generator().manual_seed(seed)
    batch, heads, query_tokens, head_dim = q.shape
    tokens = k.shape[-2]
    frame_tokens = grid[1] * grid[2]
    picks = torch.randperm(query_tokens, generator=gen)[: min(sample, query_tokens)].to(q.device)
    logits = torch.einsum("bhqd,bhkd->bhqk", q[:, :, picks].float(), k.float()) * head_dim**-0.5
    probs = torch.softmax(logits, dim=-1)
    entropy = -(probs * torch.log_softmax(logits, dim=-1)).sum(-1)
    query_frame = (tokens - query_tokens + picks) // frame_tokens
    key_frame = torch.arange(tokens, device=q.device) // frame_tokens
    own = (key_frame[None, :] == query_frame[:, None]).to(probs.dtype)
    top = probs.topk(min(32, tokens), dim=-1).values.sum(-1)
    return {
        "normalized_entropy": (entropy / math.log(tokens)).mean().item(),
        "top1": probs.max(-1).values.mean().item(),
        "own_frame_mass": (probs * own).sum(-1).mean().item(),
        "top32_mass": top.mean().item(),
    }
