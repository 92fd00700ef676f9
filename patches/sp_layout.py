"""Token shards of a frame-major Wan sequence over sequence-parallel ranks, with global RoPE positions.

Wan's tokens are frame-major (frame, row, column). Rank r of W holds the contiguous shard
[r * S, (r + 1) * S) with S = ceil(N / W); when W does not divide N the last shard(s) are padded
with dummy tokens. Padding is never attended: after the all-to-all each rank holds the full padded
sequence for its heads and drops the pad tokens before attention (``ShardLayout.tokens``), so no mask
is needed. Whole-frame shards are not used because a causal chunk of 3 latent frames must still
split over 4 or 8 ranks.

RoPE of a shard comes from the global (frame, row, column) position of each of its tokens, computed
from its index alone (no gather of the sequence): the temporal position is the frame's global latent
index (the causal sampler's chunk offset, ``patches/rope.py``), rows and columns follow ComfyUI's
``rope_options`` (shift / scale) exactly as ``WanModel.rope_encode`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ShardLayout:
    """How ``tokens`` frame-major tokens split over ``world`` ranks."""

    tokens: int
    world: int

    @property
    def shard_tokens(self) -> int:
        return -(-self.tokens // self.world)

    @property
    def padded_tokens(self) -> int:
        return self.shard_tokens * self.world

    def start(self, rank: int) -> int:
        return rank * self.shard_tokens

    def valid_tokens(self, rank: int) -> int:
        """Real (not padding) tokens in ``rank``'s shard."""
        return max(0, min(self.tokens - self.start(rank), self.shard_tokens))

    def shard(self, x: torch.Tensor, rank: int, dim: int = 1) -> torch.Tensor:
        """``rank``'s shard of a full sequence ``x`` (padded with zeros to ``shard_tokens``)."""
        start, valid = self.start(rank), self.valid_tokens(rank)
        part = x.narrow(dim, min(start, x.shape[dim]), valid)
        missing = self.shard_tokens - valid
        if missing == 0:
            return part
        pad_shape = list(part.shape)
        pad_shape[dim] = missing
        return torch.cat([part, part.new_zeros(pad_shape)], dim=dim)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_heads(heads: int, world: int) -> None:
    """Ulysses splits attention heads over ranks: raise a ValueError saying what to change."""
    if world < 1 or heads % world:
        raise ValueError(
            f"[RTV] sequence parallel splits the {heads} attention heads of this model over the ranks: "
            f"{heads} heads cannot be split over {world} ranks. Use a number of ranks that divides "
            f"{heads}: {', '.join(map(str, divisors(heads)))}."
        )


@dataclass(frozen=True)
class RopeAxes:
    """Where rows, columns and frames sit on RoPE's axes (ComfyUI ``rope_options``, defaults = plain)."""

    shift_t: float = 0.0
    shift_y: float = 0.0
    shift_x: float = 0.0
    scale_t: float = 1.0
    scale_y: float = 1.0
    scale_x: float = 1.0

    @classmethod
    def from_rope_options(cls, rope_options: dict | None) -> RopeAxes:
        o = rope_options or {}
        return cls(*(float(o.get(k, d)) for k, d in (
            ("shift_t", 0.0), ("shift_y", 0.0), ("shift_x", 0.0),
            ("scale_t", 1.0), ("scale_y", 1.0), ("scale_x", 1.0))))  # fmt: skip


def frame_time_positions(frames: int, explicit: tuple[float, ...] | None, axes: RopeAxes) -> torch.Tensor:
    """Temporal RoPE position of each latent frame of the call (float64 for exact integer arithmetic).

    ``explicit``: the global latent index of each frame (``patches/rope.py``; ``scale_t`` is not applied
    to them, as there); otherwise ComfyUI's positions 0, scale_t, 2 * scale_t, ...
    """
    if explicit is not None:
        if len(explicit) != frames:
            raise ValueError(f"[RTV] {len(explicit)} frame positions for a call of {frames} latent frames")
        t = torch.tensor(explicit, dtype=torch.float64)
    else:
        t = torch.arange(frames, dtype=torch.float64) * axes.scale_t
    return t + axes.shift_t


def shard_token_positions(
    grid: tuple[int, int, int],
    rank: int,
    world: int,
    frame_positions: tuple[float, ...] | None = None,
    axes: RopeAxes = RopeAxes(),
) -> torch.Tensor:
    """[shard_tokens, 3] global (t, row, column) RoPE positions of ``rank``'s tokens (pad tokens: 0).

    Token g of the call is frame g // (rows * cols), row (g // cols) % rows, column g % cols; t is the
    frame's global time position.
    """
    frames, rows, cols = grid
    layout = ShardLayout(frames * rows * cols, world)
    g = torch.arange(layout.start(rank), layout.start(rank) + layout.shard_tokens)
    real = g < layout.tokens
    g = torch.where(real, g, torch.zeros_like(g))
    t = frame_time_positions(frames, frame_positions, axes)[g // (rows * cols)]
    row = (g // cols) % rows * axes.scale_y + axes.shift_y
    col = g % cols * axes.scale_x + axes.shift_x
    ids = torch.stack([t, row.double(), col.double()], dim=-1)
    return torch.where(real[:, None], ids, torch.zeros_like(ids))
