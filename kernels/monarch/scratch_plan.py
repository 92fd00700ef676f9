"""How much scratch one Monarch call may take, and how its query tiles are split into launches.

Stages 1 and 2 exchange aL and Y through memory: ``key_tiles`` times the size of the queries (4.3 GB
for 480p x 81 frames in 16 bits). A call runs its query tiles in chunks whose scratch fits a budget.
"""

from __future__ import annotations

import os

import torch

from .reference import MonarchLayout

SCRATCH_ENV = "RTV_MONARCH_SCRATCH_MB"
"""Fixed scratch budget per launch in MiB; unset: a share of the free device memory, see below."""
DEFAULT_SCRATCH_MB = 1024
AUTO_SCRATCH_SHARE = 0.25
AUTO_SCRATCH_CAP_MB = 8192
"""Without ``SCRATCH_ENV`` a call may take a quarter of the device memory free when its launches are
first planned, between 1 and 8 GiB: 480p x 81 frames then runs as one launch instead of five, 9 %
faster on an H100 (bench/results/attention_scratch_sweep_h100.json)."""


def scratch_budget_bytes(device: torch.device) -> int:
    """Bytes of aL/Y/aR scratch a call on ``device`` may allocate (``SCRATCH_ENV`` if set)."""
    configured = os.environ.get(SCRATCH_ENV)
    if configured is not None:
        return int(float(configured) * (1 << 20))
    floor = DEFAULT_SCRATCH_MB << 20
    if device.type != "cuda":
        return floor
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # cached by torch
    return int(min(AUTO_SCRATCH_CAP_MB << 20, max(floor, AUTO_SCRATCH_SHARE * free)))


def _bytes_per_query_tile(layout: MonarchLayout, groups: int, head_dim: int, elem: int, iterations: int) -> int:
    per_pair = groups * layout.b2 * layout.key_tiles * layout.b1
    per_tile = per_pair * (head_dim * elem * (2 + (iterations > 1)) + 4)
    return per_tile + groups * layout.b1 * layout.b2 * (head_dim + 1) * 4  # exact local output


def query_tiles_per_chunk(
    layout: MonarchLayout, groups: int, head_dim: int, elem: int, iterations: int, budget: int
) -> int:
    """Most query tiles per launch within ``budget`` bytes (at least one)."""
    per_tile = _bytes_per_query_tile(layout, groups, head_dim, elem, iterations)
    return max(1, min(layout.query_tiles, budget // per_tile))


def head_slices(
    layout: MonarchLayout, batch: int, heads: int, head_dim: int, elem: int, iterations: int, budget: int
) -> list[tuple[int, int]]:
    """(first head, heads) of each launch. All heads in one launch when their scratch fits ``budget``;
    else as few launches of whole heads, with all their query tiles, as fit. Every chunk of query tiles
    reads all keys and values of its heads again: at 720p those are 1.55 GB for 40 heads, so five chunks
    of query tiles read 7.7 GB and four launches of 10 heads read them once. When not even one head of
    every batch item fits, all heads run together in chunks of query tiles."""
    per_head = _bytes_per_query_tile(layout, batch, head_dim, elem, iterations) * layout.query_tiles
    fitting = budget // per_head
    if fitting >= heads or fitting < 1:
        return [(0, heads)]
    return chunk_bounds(heads, fitting)


def chunk_bounds(query_tiles: int, most: int) -> list[tuple[int, int]]:
    """(first, count) of as few chunks of at most ``most`` tiles (or heads) as cover ``query_tiles``, of
    even sizes: 21 tiles by at most 5 run as 5+4+4+4+4, not 5+5+5+5+1, whose last launches would leave
    most of the GPU idle."""
    chunks = -(-query_tiles // most)
    edges = [query_tiles * i // chunks for i in range(chunks + 1)]
    return [(lo, hi - lo) for lo, hi in zip(edges, edges[1:])]
