"""Torch reference of tiled Monarch attention: the meaning every faster backend must reproduce.

Notation follows research/algorithms.md sections 1.3-1.5. Tokens of a video are frame-major
(frame, row, column) on the key-side grid ``(F, h, w)``. A *tile* is ``tile_frames`` frames x
``h / h_split`` rows x ``w / w_split`` columns, laid out as a ``b1 x b2`` block with

    b1 = tile_frames * h / h_split      (tile row index = frame offset * h / h_split + row offset)
    b2 = w / w_split                    (tile column index = column offset)

which is the MonarchRT layout (``'b (a c e) (f i) j'``). ``m`` indexes query tiles, ``n`` key
tiles; a query token is ``(m, l, j)`` and a key token ``(n, k, i)``. The implied attention weight is
``A[(m,l,j),(n,k,i)] = L[m,n,j,k,l] * R[m,n,k,j,i]``: R is a softmax over the key columns ``i`` of
key row ``k`` of key tile ``n``; L is a softmax jointly over (key tile ``n``, key row ``k``).

Both factors come from alternating maximisation of the softmax variational objective
``<A, QK^T> + H(A)`` starting from ``L = identity`` (the tiled pseudocode, algorithms.md 1.4):

    aR = sum_l L[m,n,j,k,l] Q[m,l,j]          cR = sum_l L[m,n,j,k,l]
    R  = softmax_i(aR . K[n,k,i] / cR)
    aL = sum_i R K[n,k,i]                     cL = sum_i R log R
    L  = softmax_(n,k)(aL . Q[m,l,j] - cL)
    Y  = sum_i R V[n,k,i]                     out[m,l,j] = sum_(n,k) L Y

Two deliberate implementation choices, both exact rewrites of the equations above:

* ``aR / cR`` is the L-weighted *mean* query, so it is computed as a softmax over ``l`` of ``log L``.
  This never divides 0 by 0 when a block of L underflows (a port we read adds ``1e-6`` to ``cR``).
* L is kept as ``log L`` (logits minus their joint log-normaliser), which is also what the exact
  local-tile merge needs.

Special cases (tested): with one column per tile (b2 = 1, R = 1, cL = 0) or one row per tile
(b1 = 1, R is the query's own softmax over its key row, so ``aL . q - cL`` is the row's exact
log-mass) the result is dense attention exactly, for any number of iterations.

Memory: the N x N matrix is never built. Query tiles (and heads) are processed in chunks so that
each intermediate holds at most ``max_chunk_elements`` numbers, or one query tile's worth if that
is more: one query tile against all key tiles costs ``key_tiles * b1 * b2 * max(D, b1, b2)``
numbers (about the size of K), plus ``b1*b2`` x (local keys) logits with exact local tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .extra_keys import check_extra, extra_attention, merge_into

DEFAULT_MAX_CHUNK_ELEMENTS = 1 << 25
"""Numbers per intermediate tensor of one chunk (128 MiB in float32); bounds peak memory."""

EXACT_LOCAL_OFF = -1
"""``exact_local`` value that turns exact local tiles off (pure Monarch)."""


# --------------------------------------------------------------------------------------------
# Layout: which token sits in which tile, and the checks that make a grid usable.
# --------------------------------------------------------------------------------------------


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


@dataclass(frozen=True)
class MonarchLayout:
    """A validated tiling of the key-side grid and of the query frames (the last ones of the grid)."""

    frames: int
    height: int
    width: int
    tile_frames: int
    h_split: int
    w_split: int
    query_frames: int

    @property
    def b1(self) -> int:
        """Rows per tile: the frames of a tile stacked over its rows."""
        return self.tile_frames * self.height // self.h_split

    @property
    def b2(self) -> int:
        """Columns per tile."""
        return self.width // self.w_split

    @property
    def frame_tokens(self) -> int:
        return self.height * self.width

    @property
    def tiles_per_group(self) -> int:
        """Tiles that share one tile-frame group (the h and w splits of ``tile_frames`` frames)."""
        return self.h_split * self.w_split

    @property
    def key_groups(self) -> int:
        return self.frames // self.tile_frames

    @property
    def query_groups(self) -> int:
        return self.query_frames // self.tile_frames

    @property
    def key_tiles(self) -> int:
        return self.key_groups * self.tiles_per_group

    @property
    def query_tiles(self) -> int:
        return self.query_groups * self.tiles_per_group

    @property
    def query_group_offset(self) -> int:
        """Tile-frame group index (on the key grid) of the first query tile-frame group."""
        return self.key_groups - self.query_groups

    @property
    def is_chunk(self) -> bool:
        """True when the queries are only the last frames (a chunk against cached keys)."""
        return self.query_frames != self.frames


def monarch_layout(
    grid: tuple[int, int, int],
    query_tokens: int,
    key_tokens: int,
    *,
    tile_frames: int = 1,
    h_split: int = 1,
    w_split: int = 1,
) -> MonarchLayout:
    """Validate ``grid`` and the tiling; raise a ValueError that says which axis to change."""
    if len(grid) != 3 or any(int(x) != x or x < 1 for x in grid):
        raise ValueError(f"Monarch attention: grid must be three positive ints (frames, h, w), got {grid!r}")
    frames, height, width = (int(x) for x in grid)
    for name, value in (("tile_frames", tile_frames), ("h_split", h_split), ("w_split", w_split)):
        if int(value) != value or value < 1:
            raise ValueError(f"Monarch attention: {name} must be a positive int, got {value!r}")
    if key_tokens != frames * height * width:
        raise ValueError(
            f"Monarch attention: key tokens Nk={key_tokens} but the grid (F={frames}, h={height}, "
            f"w={width}) has F*h*w={frames * height * width}; pass the key-side token grid."
        )
    if frames % tile_frames:
        raise ValueError(
            f"Monarch attention: frame axis F={frames} is not divisible by tile_frames={tile_frames}; "
            f"choose tile_frames among {_divisors(frames)}."
        )
    if height % h_split:
        raise ValueError(
            f"Monarch attention: height axis h={height} tokens is not divisible by h_split={h_split}; "
            f"choose h_split among {_divisors(height)}."
        )
    if width % w_split:
        raise ValueError(
            f"Monarch attention: width axis w={width} tokens is not divisible by w_split={w_split}; "
            f"choose w_split among {_divisors(width)}."
        )
    frame_tokens = height * width
    if query_tokens % frame_tokens:
        raise ValueError(
            f"Monarch attention: query tokens Nq={query_tokens} is not a multiple of the frame size "
            f"h*w={frame_tokens}; queries must be whole frames (all of the grid or its last frames)."
        )
    query_frames = query_tokens // frame_tokens
    if not 1 <= query_frames <= frames:
        raise ValueError(
            f"Monarch attention: {query_frames} query frames but the key grid has F={frames} frames; "
            "queries must be the whole grid or its last frames."
        )
    if query_frames % tile_frames:
        raise ValueError(
            f"Monarch attention: the {query_frames} query frames (chunk) are not divisible by "
            f"tile_frames={tile_frames}; choose tile_frames among {_divisors(query_frames)} "
            f"that also divides F={frames}."
        )
    return MonarchLayout(frames, height, width, tile_frames, h_split, w_split, query_frames)


def to_tiles(x: Tensor, layout: MonarchLayout) -> Tensor:
    """``[G, frames*h*w, D]`` frame-major tokens -> ``[G, tiles, b1, b2, D]`` (any number of frames)."""
    g, tokens, d = x.shape
    lay = layout
    groups = tokens // (lay.tile_frames * lay.frame_tokens)
    x = x.reshape(g, groups, lay.tile_frames, lay.h_split, lay.height // lay.h_split, lay.w_split, lay.b2, d)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, 7)  # g, group, h tile, w tile, frame offset, row offset, col, d
    return x.reshape(g, groups * lay.tiles_per_group, lay.b1, lay.b2, d)


def from_tiles(x: Tensor, layout: MonarchLayout) -> Tensor:
    """Inverse of :func:`to_tiles`."""
    g, tiles, _, _, d = x.shape
    lay = layout
    groups = tiles // lay.tiles_per_group
    x = x.reshape(g, groups, lay.h_split, lay.w_split, lay.tile_frames, lay.height // lay.h_split, lay.b2, d)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7)  # g, group, frame offset, h tile, row offset, w tile, col, d
    return x.reshape(g, tiles * lay.b1 * lay.b2, d)


def local_key_tile_range(layout: MonarchLayout, query_tile: int, exact_local: int) -> tuple[int, int]:
    """Key tiles ``[lo, hi)`` attended exactly by query tile ``query_tile`` (index among query tiles).

    They are all key tiles whose tile-frame group lies within ``exact_local`` groups of the query
    tile's own group (clipped at the ends of the grid). Tiles of one group are contiguous.
    """
    group = layout.query_group_offset + query_tile // layout.tiles_per_group
    lo = max(0, group - exact_local) * layout.tiles_per_group
    hi = min(layout.key_groups, group + exact_local + 1) * layout.tiles_per_group
    return lo, hi


def density(layout: MonarchLayout, iterations: int = 1, exact_local: int = EXACT_LOCAL_OFF) -> float:
    """Fraction of the dense attention cost, averaged over queries (blog-style key equivalents).

    Dense attention touches every key once per query: ``key_tiles * b1 * b2``. One Monarch
    iteration touches ``b1 + b2`` per key tile (b2 key columns for R, b1 summary keys for L), and
    each iteration repeats that cost. Exact local tiles cost ``b1 * b2`` each and no Monarch work.
    """
    dense_per_tile = layout.b1 * layout.b2
    monarch_per_tile = iterations * (layout.b1 + layout.b2)
    total = 0.0
    for m in range(layout.query_tiles):
        local = 0
        if exact_local >= 0:
            lo, hi = local_key_tile_range(layout, m, exact_local)
            local = hi - lo
        total += local * dense_per_tile + (layout.key_tiles - local) * monarch_per_tile
    return total / (layout.query_tiles * layout.key_tiles * dense_per_tile)


# --------------------------------------------------------------------------------------------
# The factors, one small function per equation. Shapes: Q [g, m, b1, b2, D] (l or k, j);
# K, V [g, n, b1, b2, D] (k, i); log_L [g, m, n, j, k, l]; R [g, m, n, k, j, i].
# --------------------------------------------------------------------------------------------


def aR_mean_first(Q: Tensor) -> Tensor:
    """``aR / cR`` for L = identity: the query of row k itself, the same for every key tile n."""
    return Q  # [g, m, k, j, D]


def aR_mean(log_L: Tensor, Q: Tensor) -> Tensor:
    """``aR / cR``: the L-weighted mean query over rows l, as a softmax of ``log L`` over l."""
    weights = torch.softmax(log_L, dim=-1)  # [g, m, n, j, k, l]
    return torch.einsum("gmnjkl,gmljd->gmnkjd", weights, Q)


def log_R(aR_over_cR: Tensor, K: Tensor) -> Tensor:
    """``log R = log_softmax_i(aR . K[n,k,i] / cR)``, R per (m, n, k, j) over the key columns i."""
    if aR_over_cR.dim() == 5:  # first iteration: no key-tile axis yet
        bR = torch.einsum("gmkjd,gnkid->gmnkji", aR_over_cR, K)
    else:
        bR = torch.einsum("gmnkjd,gnkid->gmnkji", aR_over_cR, K)
    return torch.log_softmax(bR, dim=-1)


def aL(R: Tensor, K: Tensor) -> Tensor:
    """Summary key per (m, n, j, k): the R-weighted mean of key row k of tile n."""
    return torch.einsum("gmnkji,gnkid->gmnjkd", R, K)


def cL(R: Tensor, log_R_: Tensor) -> Tensor:
    """``sum_i R log R`` (minus the entropy of each R row), as [g, m, n, j, k]."""
    return (R * log_R_).sum(dim=-1).transpose(-1, -2)


def L_logits(aL_: Tensor, cL_: Tensor, Q: Tensor) -> Tensor:
    """``aL . Q[m,l,j] - cL``: the log-mass L gives block (n, k) for query (l, j), unnormalised.

    It equals ``sum_i R_i (q.k_i) + H(R)``, the variational lower bound on the exact block log-mass
    ``logsumexp_i q.k_i`` (equality when R is the query's own softmax over the block).
    """
    return torch.einsum("gmnjkd,gmljd->gmnjkl", aL_, Q) - cL_.unsqueeze(-1)


def Y(R: Tensor, V: Tensor) -> Tensor:
    """R-weighted values per (m, n, j, k)."""
    return torch.einsum("gmnkji,gnkid->gmnjkd", R, V)


def Z(log_L: Tensor, Y_: Tensor) -> Tensor:
    """Output ``sum_(n,k) L Y`` per query token, as [g, m, l, j, D]."""
    return torch.einsum("gmnjkl,gmnjkd->gmljd", log_L.exp(), Y_)


# --------------------------------------------------------------------------------------------
# Exact local tiles: dense attention over a query tile's local key tiles, with its log-mass.
# --------------------------------------------------------------------------------------------


def exact_local_attention(
    Q: Tensor, K: Tensor, V: Tensor, layout: MonarchLayout, first_tile: int, exact_local: int
) -> tuple[Tensor, Tensor]:
    """Dense attention of query tiles ``first_tile ..`` over their local key tiles.

    Returns the normalised output ``[g, m, l, j, D]`` and its log-normaliser ``[g, m, l, j]`` (the
    exact log-mass of the local keys), so the caller can merge it with the Monarch part.
    Query tiles sharing one local window are batched together.
    """
    g, m_count, b1, b2, d = Q.shape
    out = Q.new_empty(g, m_count, b1, b2, V.shape[-1])
    lse = Q.new_empty(g, m_count, b1, b2)
    start = 0
    while start < m_count:
        window = local_key_tile_range(layout, first_tile + start, exact_local)
        stop = start + 1
        while stop < m_count and local_key_tile_range(layout, first_tile + stop, exact_local) == window:
            stop += 1
        lo, hi = window
        q = Q[:, start:stop].reshape(g, stop - start, b1 * b2, d)
        k = K[:, lo:hi].reshape(g, (hi - lo) * b1 * b2, d)
        v = V[:, lo:hi].reshape(g, (hi - lo) * b1 * b2, V.shape[-1])
        logits = torch.einsum("gmqd,gkd->gmqk", q, k)
        lse_chunk = torch.logsumexp(logits, dim=-1)
        out_chunk = torch.einsum("gmqk,gkd->gmqd", (logits - lse_chunk.unsqueeze(-1)).exp(), v)
        out[:, start:stop] = out_chunk.reshape(g, stop - start, b1, b2, -1)
        lse[:, start:stop] = lse_chunk.reshape(g, stop - start, b1, b2)
        start = stop
    return out, lse


def local_tile_mask(layout: MonarchLayout, first_tile: int, count: int, exact_local: int) -> Tensor:
    """Boolean ``[m, n]``: True where key tile n is attended exactly by query tile m."""
    mask = torch.zeros(count, layout.key_tiles, dtype=torch.bool)
    if exact_local >= 0:
        for m in range(count):
            lo, hi = local_key_tile_range(layout, first_tile + m, exact_local)
            mask[m, lo:hi] = True
    return mask


# --------------------------------------------------------------------------------------------
# One chunk of query tiles against all key tiles.
# --------------------------------------------------------------------------------------------


def monarch_chunk(
    Q: Tensor,
    K: Tensor,
    V: Tensor,
    iterations: int,
    local_mask: Tensor | None = None,
    local_out: Tensor | None = None,
    local_lse: Tensor | None = None,
) -> Tensor:
    """Tiled Monarch for query tiles Q ``[g, m, b1, b2, D]`` against K, V ``[g, n, b1, b2, D]``.

    Without exact local tiles this is the tiled pseudocode of algorithms.md 1.4. With them
    (``local_mask`` True for the key tiles attended exactly, ``local_out``/``local_lse`` their
    dense output and log-normaliser), every L softmax is taken jointly over the Monarch blocks of
    the non-local tiles *and* the exact local keys (see ``monarch_attention_reference``).
    Returns the output ``[g, m, l, j, D]`` (l, j: query tile row and column).
    """
    masked = local_mask is not None and bool(local_mask.any())
    if masked:
        block_is_local = local_mask.to(Q.device)[None, :, :, None, None, None]  # over (g,m,n,j,k,l)
    aR_over_cR = aR_mean_first(Q)
    for iteration in range(iterations):
        logR = log_R(aR_over_cR, K)
        R = logR.exp()
        logits = L_logits(aL(R, K), cL(R, logR), Q)  # [g, m, n, j, k, l]
        if masked:
            logits = logits.masked_fill(block_is_local, float("-inf"))
        log_norm = torch.logsumexp(logits, dim=(2, 4), keepdim=True)  # over (n, k): [g, m, 1, j, 1, l]
        if local_lse is not None:
            # local_lse is [g, m, l, j]; the joint normaliser adds the exact local log-mass.
            log_norm = torch.logaddexp(log_norm, local_lse.transpose(-1, -2)[:, :, None, :, None, :])
        log_L = logits - log_norm
        if iteration + 1 < iterations:
            # Blocks attended exactly carry no Monarch mass; any finite value keeps softmax_l defined
            # (their R is computed but never used).
            aR_over_cR = aR_mean(log_L.masked_fill(block_is_local, 0.0) if masked else log_L, Q)
    out = Z(log_L, Y(R, V))
    if local_out is not None:
        local_weight = (local_lse.transpose(-1, -2) - log_norm[:, :, 0, :, 0, :]).exp()  # [g, m, j, l]
        out = out + local_weight.transpose(-1, -2).unsqueeze(-1) * local_out
    return out


def _chunk_sizes(groups: int, query_tiles: int, cost_per_pair: int, budget: int) -> tuple[int, int]:
    """How many (head, query tile) pairs to process at once: as many as fit in ``budget``."""
    per_head = max(1, min(query_tiles, budget // max(1, cost_per_pair)))
    heads = max(1, min(groups, budget // max(1, cost_per_pair * per_head)))
    return heads, per_head


def monarch_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    grid: tuple[int, int, int],
    *,
    tile_frames: int = 1,
    h_split: int = 1,
    w_split: int = 1,
    iterations: int = 1,
    scale: float | None = None,
    exact_local: int = EXACT_LOCAL_OFF,
    extra_k: Tensor | None = None,
    extra_v: Tensor | None = None,
    extra_bias: float = 0.0,
    max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS,
) -> Tensor:
    """Tiled Monarch attention in torch (float32, or float64 for float64 inputs).

    Arguments are those of :func:`monarch_attention` (q ``[B, H, Nq, D]``, k, v ``[B, H, Nk, D]``),
    plus ``max_chunk_elements`` to bound the size of each intermediate.

    **Extra keys** (``extra_k``, ``extra_v`` ``[B, H, Ne, D]``: keys outside the grid) are attended
    exactly by every query, like local tiles: their dense output and log-mass join the same
    log-sum-exp merge (``extra_keys.py``). With them and ``exact_local`` -1 the local part is the
    extra keys alone. ``extra_bias`` is added to every extra key's logit (their log-mass grows by it).

    **Exact local tiles** (``exact_local = r >= 0``): for a query tile in tile-frame group ``a``,
    the key tiles of groups ``a-r .. a+r`` are attended exactly; the others by Monarch.
    Derivation: for query (l, j) the one-iteration Monarch output is
    ``sum_(n,k) exp(s_nk) Y_nk / sum_(n,k) exp(s_nk)`` with ``s_nk = q.aL_nk - cL_nk``. By the
    variational form, ``s_nk = sum_i R_i (q.k_i) - sum_i R_i log R_i <= logsumexp_i(q.k_i)``: s_nk is
    the log-mass Monarch assigns to block (n, k), and R spreads it over the block's columns. Dense
    attention has the same form with ``s_nk`` replaced by the exact ``logsumexp_i q.k_i`` and R by
    the query's own softmax. Replacing, for local tiles only, the pair (s_nk, R) by the exact
    per-key logits ``q.k_i`` gives

        out = (sum_nonlocal exp(s_nk) Y_nk + sum_local keys exp(q.k) v) / (sum_nonlocal exp(s_nk)
              + sum_local keys exp(q.k)),

    i.e. a log-sum-exp merge of the Monarch part (over non-local blocks) and dense attention over
    the local keys. With every key tile local it is dense attention exactly.

    For ``iterations > 1`` the same joint normalisation is used in every L update: this is
    coordinate ascent on the full variational objective in which local keys are unconstrained and
    only non-local blocks are Monarch-factorised. So the L weights that feed the next R update
    already account for the mass taken by the local keys (a query dominated by its local keys gives
    little weight to refining distant blocks). Supported for any number of iterations.
    """
    layout = monarch_layout(
        grid, q.shape[-2], k.shape[-2], tile_frames=tile_frames, h_split=h_split, w_split=w_split
    )
    _check_tensors(q, k, v)
    check_extra(q, extra_k, extra_v)
    if int(iterations) != iterations or iterations < 1:
        raise ValueError(f"Monarch attention: iterations must be an int >= 1, got {iterations!r}")
    if int(exact_local) != exact_local or exact_local < EXACT_LOCAL_OFF:
        raise ValueError(
            f"Monarch attention: exact_local must be -1 (off) or a number of neighbouring tile-frames "
            f">= 0, got {exact_local!r}"
        )
    batch, heads, _, head_dim = q.shape
    compute_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    scale = head_dim**-0.5 if scale is None else float(scale)

    groups = batch * heads
    # Scaling q alone scales every logit (bR, bL and the dense local ones) by `scale`, the same as
    # pre-scaling q and k by sqrt(scale) as upstream does.
    Qt = to_tiles((q.to(compute_dtype) * scale).reshape(groups, -1, head_dim), layout)
    Kt = to_tiles(k.to(compute_dtype).reshape(groups, -1, head_dim), layout)
    Vt = to_tiles(v.to(compute_dtype).reshape(groups, -1, v.shape[-1]), layout)
    if extra_k is not None:
        Ke = extra_k.to(compute_dtype).reshape(groups, -1, head_dim)
        Ve = extra_v.to(compute_dtype).reshape(groups, -1, extra_v.shape[-1])

    b1, b2 = layout.b1, layout.b2
    cost_per_pair = layout.key_tiles * b1 * b2 * max(head_dim, v.shape[-1], b1, b2)
    if exact_local >= 0:
        widest = (2 * exact_local + 1) * layout.tiles_per_group
        cost_per_pair = max(cost_per_pair, b1 * b2 * min(widest, layout.key_tiles) * b1 * b2)
    chunk_heads, chunk_tiles = _chunk_sizes(groups, layout.query_tiles, cost_per_pair, max_chunk_elements)

    out = Qt.new_empty(groups, layout.query_tiles, b1, b2, v.shape[-1])
    for g0 in range(0, groups, chunk_heads):
        gs = slice(g0, g0 + chunk_heads)
        for m0 in range(0, layout.query_tiles, chunk_tiles):
            count = min(chunk_tiles, layout.query_tiles - m0)
            Q = Qt[gs, m0 : m0 + count]
            extra = None
            if extra_k is not None:  # Q is already scaled; [g, m, b1, b2, D] against [g, Ne, D]
                extra_out, extra_lse = extra_attention(Q, Ke[gs], Ve[gs], 1.0)
                extra = extra_out, extra_lse + extra_bias
            if exact_local < 0 and extra is None:
                out[gs, m0 : m0 + count] = monarch_chunk(Q, Kt[gs], Vt[gs], iterations)
                continue
            mask = local_tile_mask(layout, m0, count, max(exact_local, 0))
            if exact_local < 0:
                mask.zero_()
                local_out, local_lse = extra
            else:
                local_out, local_lse = exact_local_attention(Q, Kt[gs], Vt[gs], layout, m0, exact_local)
                if extra is not None:
                    merge_into(local_out, local_lse, *extra)
            if bool(mask.all()):  # every key tile is local: this is dense attention
                out[gs, m0 : m0 + count] = local_out
            else:
                out[gs, m0 : m0 + count] = monarch_chunk(
                    Q, Kt[gs], Vt[gs], iterations, mask, local_out, local_lse
                )
    result = from_tiles(out, layout).reshape(batch, heads, -1, v.shape[-1])
    return result.to(q.dtype)


def _check_tensors(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            "Monarch attention: q, k, v must be [batch, heads, tokens, head_dim], got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "Monarch attention: q, k, v must share batch and heads, k and v the tokens, q and k the "
            f"head_dim; got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
