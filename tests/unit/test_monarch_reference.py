"""Issue 3 items 1, 2 and 5: the torch reference of tiled Monarch attention and its exact local tiles.

Exactness claims are checked in float64 against ``scaled_dot_product_attention`` and against a
literal einsum transcription of the blog's tiled pseudocode (research/algorithms.md 1.4), on
inputs whose attention is peaked and structured (never near-uniform random attention).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import rtv.kernels.monarch as monarch
from rtv.kernels.monarch import density, monarch_attention, monarch_attention_reference, monarch_layout

EXACT_ATOL = 1e-10
PEAK_LOGIT = 10.0
"""Largest positional logit of the structured inputs: the softmax is far from uniform."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def structured_qkv(
    grid: tuple[int, int, int],
    query_frames: int | None = None,
    *,
    heads: int = 2,
    dim: int = 16,
    semantic_pairs: int = 6,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positional bump (random Fourier features of (f, y, x)) + sparse semantic spikes + noise."""
    gen = torch.Generator().manual_seed(seed)
    frames, h, w = grid
    pos = torch.stack(
        torch.meshgrid(torch.arange(frames), torch.arange(h), torch.arange(w), indexing="ij"), dim=-1
    ).reshape(-1, 3)
    pos = pos.to(torch.float64)
    omega = torch.randn(heads, dim // 2, 3, generator=gen, dtype=torch.float64) * 0.5
    phase = torch.einsum("nc,hfc->hnf", pos, omega)
    phi = torch.cat([phase.cos(), phase.sin()], dim=-1)  # phi(p).phi(p') = sum cos(omega.(p - p'))
    amp = math.sqrt(PEAK_LOGIT * math.sqrt(dim) / (dim / 2))
    q = amp * phi + 0.3 * torch.randn(heads, pos.shape[0], dim, generator=gen, dtype=torch.float64)
    k = amp * phi + 0.3 * torch.randn(heads, pos.shape[0], dim, generator=gen, dtype=torch.float64)
    tokens = pos.shape[0]
    for hd in range(heads):
        for _ in range(semantic_pairs):
            u = torch.randn(dim, generator=gen, dtype=torch.float64)
            u = 1.5 * amp * math.sqrt(dim) * u / u.norm()
            a, b = torch.randint(0, tokens, (2,), generator=gen).tolist()
            q[hd, a] += u
            k[hd, b] += u
    v = torch.randn(1, heads, tokens, dim, generator=gen, dtype=torch.float64)
    q, k = q.unsqueeze(0), k.unsqueeze(0)
    query_tokens = (query_frames or frames) * h * w
    return q[:, :, tokens - query_tokens :].contiguous(), k, v


def peaked_random_qkv(grid, query_frames=None, *, heads=2, dim=8, seed=1):
    """Random q, k with logits of standard deviation ~4: peaked, unstructured attention."""
    gen = torch.Generator().manual_seed(seed)
    tokens = math.prod(grid)
    q, k, v = (torch.randn(2, heads, tokens, dim, generator=gen, dtype=torch.float64) for _ in range(3))
    q, k = 2.0 * q, 2.0 * k
    query_tokens = (query_frames or grid[0]) * grid[1] * grid[2]
    return q[:, :, tokens - query_tokens :].contiguous(), k, v


def dense(q, k, v, bias=None):
    """Dense attention of the query chunk against all keys (no causal mask: see the module docstring);
    ``bias`` [1, 1, 1, Nk]: added to every query's logits."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


# --------------------------------------------------------------------------------------------
# Literal transcription of the tiled pseudocode (research/algorithms.md 1.4), plus exact local
# tiles written directly as a joint softmax over Monarch blocks and dense local keys.
# --------------------------------------------------------------------------------------------


def tile_token_index(grid, tile_frames, h_split, w_split, frames):
    """idx[tile, row, col] -> frame-major token, built by explicit loops (independent of reshapes)."""
    _, h, w = grid
    rows_per_frame, b2 = h // h_split, w // w_split
    b1 = tile_frames * rows_per_frame
    tiles = []
    for group in range(frames // tile_frames):
        for c in range(h_split):
            for e in range(w_split):
                tile = torch.empty(b1, b2, dtype=torch.long)
                for fo in range(tile_frames):
                    for ro in range(rows_per_frame):
                        for j in range(b2):
                            f, y, x = group * tile_frames + fo, c * rows_per_frame + ro, e * b2 + j
                            tile[fo * rows_per_frame + ro, j] = (f * h + y) * w + x
                tiles.append(tile)
    return torch.stack(tiles)


def joint_softmax(x, dims):
    return (x - torch.logsumexp(x, dim=dims, keepdim=True)).exp()


def literal_tiled_monarch(q, k, v, grid, tile_frames, h_split, w_split, T, exact_local=-1, extra_k=None, extra_v=None,
                          extra_bias=0.0):  # fmt: skip
    """One head: q [Nq, d] (already scaled), k, v [N, d]. The blog's einsums, verbatim; keys outside
    the grid (``extra_k``, ``extra_v`` [Ne, d]) join every joint softmax with their exact logits (plus
    ``extra_bias``)."""
    frames = grid[0]
    query_frames = q.shape[0] // (grid[1] * grid[2])
    k_idx = tile_token_index(grid, tile_frames, h_split, w_split, frames)
    q_idx = tile_token_index(grid, tile_frames, h_split, w_split, query_frames)
    Q, K, V = q[q_idx], k[k_idx], v[k_idx]  # (m, l, j, v), (n, k, i, v)
    M, b1, b2 = q_idx.shape
    Nt = k_idx.shape[0]
    per_group = h_split * w_split
    local = torch.zeros(M, Nt, dtype=torch.bool)
    if exact_local >= 0:
        offset = (frames - query_frames) // tile_frames
        for m in range(M):
            for n in range(Nt):
                local[m, n] = abs((offset + m // per_group) - n // per_group) <= exact_local
    dense_logits = torch.einsum("mljv,nkiv->mnjkli", Q, K).masked_fill(
        ~local[:, :, None, None, None, None], -math.inf
    )

    extra_logits = torch.full((M, b1, b2, 1), -math.inf, dtype=q.dtype)  # (m, l, j, e)
    if extra_k is not None:
        extra_logits = torch.einsum("mljv,ev->mlje", Q, extra_k) + extra_bias
        extra_v = torch.cat([extra_v, torch.zeros_like(extra_v[:1])])  # a zero value for the -inf column
        extra_logits = torch.cat([extra_logits, torch.full_like(extra_logits[..., :1], -math.inf)], dim=-1)
    else:
        extra_v = torch.zeros(1, v.shape[-1], dtype=v.dtype)
    extra_mass = torch.logsumexp(extra_logits, dim=-1).transpose(1, 2)  # (m, j, l)

    L = torch.eye(b1, dtype=q.dtype).expand(M, Nt, b2, b1, b1)  # (m,n,j,k,l)
    for _ in range(T):
        aR = torch.einsum("mnjkl,mljv->mnkjv", L, Q)
        bR = torch.einsum("mnkjv,nkiv->mnkji", aR, K)
        cR = torch.einsum("mnjkl->mnkj", L)
        cR = torch.where(local[:, :, None, None], torch.ones_like(cR), cR)  # unused blocks: avoid 0/0
        R = torch.softmax(bR / cR[..., None], dim=4)
        aL = torch.einsum("mnkji,nkiv->mnjkv", R, K)
        bL = torch.einsum("mnjkv,mljv->mnjkl", aL, Q)
        cL = torch.einsum("mnkji->mnjk", torch.xlogy(R, R))
        logits = (bL - cL[..., None]).masked_fill(local[:, :, None, None, None], -math.inf)
        log_norm = torch.logaddexp(
            torch.logsumexp(logits, dim=(1, 3)), torch.logsumexp(dense_logits, dim=(1, 3, 5))
        )  # (m, j, l)
        log_norm = torch.logaddexp(log_norm, extra_mass)
        L = (logits - log_norm[:, None, :, None, :]).exp()  # softmax jointly over (n, k) [+ local keys]
    P = (dense_logits - log_norm[:, None, :, None, :, None]).exp()
    Y = torch.einsum("mnkji,nkiv->mnjkv", R, V)
    Z = torch.einsum("mnjkl,mnjkv->mljv", L, Y) + torch.einsum("mnjkli,nkiv->mljv", P, V)
    Z = Z + torch.einsum("mlje,ev->mljv", (extra_logits - log_norm.transpose(1, 2)[..., None]).exp(), extra_v)
    out = torch.empty_like(q)
    out[q_idx.reshape(-1)] = Z.reshape(-1, q.shape[-1])
    return out


def literal(q, k, v, grid, *, tile_frames=1, h_split=1, w_split=1, iterations=1, exact_local=-1, extra_k=None,
            extra_v=None, extra_bias=0.0):  # fmt: skip
    scale = q.shape[-1] ** -0.5
    out = torch.empty_like(q)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            extra = {} if extra_k is None else {"extra_k": extra_k[b, h], "extra_v": extra_v[b, h],
                                                "extra_bias": extra_bias}
            out[b, h] = literal_tiled_monarch(
                q[b, h] * scale, k[b, h], v[b, h], grid, tile_frames, h_split, w_split, iterations, exact_local, **extra
            )
    return out


def rel_l2(a, b):
    return ((a - b).norm() / b.norm()).item()


# --------------------------------------------------------------------------------------------
# 1. One row or one column per tile: one-iteration Monarch is dense attention.
# --------------------------------------------------------------------------------------------

GRID = (4, 6, 8)
ONE_COLUMN = dict(w_split=GRID[2])  # b2 = 1: R = 1, cL = 0, aL = the key itself
ONE_ROW = dict(h_split=GRID[1])  # b1 = 1: R is the query's own softmax, so q.aL - cL = exact lse


@pytest.mark.parametrize("tiling", [ONE_COLUMN, ONE_ROW, dict(h_split=GRID[1], w_split=2)], ids=str)
@pytest.mark.parametrize("query_frames", [None, 1, 2], ids=["full", "chunk1", "chunk2"])
@pytest.mark.parametrize("inputs", [structured_qkv, peaked_random_qkv], ids=["structured", "peaked"])
@pytest.mark.parametrize("iterations", [1, 3])
def test_one_row_or_one_column_per_tile_is_dense_attention(tiling, query_frames, inputs, iterations):
    """b2 = 1: R = 1 and cL = 0, so L is a softmax over every key. b1 = 1: R is the query's own
    softmax over its key row, so q.aL - cL is that row's exact log-mass. Later iterations keep
    both (L weights one query row only), so every iteration count is exact."""
    q, k, v = inputs(GRID, query_frames)
    out = monarch_attention(q, k, v, GRID, iterations=iterations, **tiling)
    torch.testing.assert_close(out, dense(q, k, v), atol=EXACT_ATOL, rtol=0)


def test_inputs_are_not_near_uniform():
    """Guard for every exactness test: the structured attention is peaked, so errors cannot hide."""
    q, k, v = structured_qkv(GRID)
    probs = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
    entropy = -(probs * probs.clamp_min(1e-300).log()).sum(-1)
    assert entropy.mean() < 0.5 * math.log(math.prod(GRID))
    assert probs.max(-1).values.mean() > 0.05


# --------------------------------------------------------------------------------------------
# 2. General tilings and iterations match the literal transcription.
# --------------------------------------------------------------------------------------------

TILINGS = [
    ((4, 6, 8), dict()),
    ((4, 6, 8), dict(h_split=2)),
    ((4, 6, 8), dict(tile_frames=2)),
    ((4, 6, 8), dict(w_split=2)),
    ((4, 6, 8), dict(tile_frames=2, h_split=3, w_split=2)),
    ((2, 4, 6), dict(h_split=2, w_split=3)),
]


@pytest.mark.parametrize("grid,tiling", TILINGS, ids=lambda x: str(x))
@pytest.mark.parametrize("iterations", [1, 2, 3])
@pytest.mark.parametrize("chunk", [False, True], ids=["full", "chunk"])
def test_matches_literal_tiled_pseudocode(grid, tiling, iterations, chunk):
    query_frames = tiling.get("tile_frames", 1) if chunk else None
    q, k, v = structured_qkv(grid, query_frames, seed=iterations)
    out = monarch_attention(q, k, v, grid, iterations=iterations, **tiling)
    expected = literal(q, k, v, grid, iterations=iterations, **tiling)
    torch.testing.assert_close(out, expected, atol=EXACT_ATOL, rtol=0)


def test_custom_scale_is_the_logit_scale():
    q, k, v = structured_qkv(GRID)
    out = monarch_attention(q, k, v, GRID, h_split=2, iterations=2, scale=0.5)
    expected = literal(q * (0.5 * q.shape[-1] ** 0.5), k, v, GRID, h_split=2, iterations=2)
    torch.testing.assert_close(out, expected, atol=EXACT_ATOL, rtol=0)


def test_monarch_is_an_approximation_on_general_tiles():
    """Sanity: the default tiling is not secretly dense attention (the tests above would be moot)."""
    q, k, v = structured_qkv(GRID)
    assert rel_l2(monarch_attention(q, k, v, GRID), dense(q, k, v)) > 1e-3


# --------------------------------------------------------------------------------------------
# 3. Validation, dtype and shape, bounded memory, dispatch.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grid,kwargs,query_frames,words",
    [
        ((4, 6, 8), dict(tile_frames=3), None, ["frame axis", "tile_frames=3", "1, 2, 4"]),
        ((4, 6, 8), dict(h_split=4), None, ["height axis", "h_split=4"]),
        ((4, 6, 8), dict(w_split=3), None, ["width axis", "w_split=3"]),
        ((4, 6, 8), dict(tile_frames=2), 1, ["query frames", "tile_frames=2"]),
        ((4, 6, 9), dict(), None, ["key tokens", "F*h*w"]),
    ],
)
def test_misaligned_grid_raises_naming_the_axis(grid, kwargs, query_frames, words):
    q, k, v = structured_qkv((4, 6, 8), query_frames)
    with pytest.raises(ValueError) as error:
        monarch_attention(q, k, v, grid, **kwargs)
    for word in words:
        assert word in str(error.value)


def test_query_tokens_must_be_whole_frames():
    q, k, v = structured_qkv(GRID)
    with pytest.raises(ValueError, match="multiple of the frame size"):
        monarch_attention(q[:, :, 5:], k, v, GRID)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_output_dtype_and_shape_follow_q(dtype):
    q, k, v = structured_qkv(GRID, 2, heads=3)
    out = monarch_attention(q.to(dtype), k.to(dtype), v.to(dtype), GRID, h_split=2)
    assert out.dtype == dtype and out.shape == q.shape
    in_float32 = monarch_attention(
        q.to(dtype).float(), k.to(dtype).float(), v.to(dtype).float(), GRID, h_split=2
    )
    torch.testing.assert_close(out.float(), in_float32, atol=1e-2, rtol=1e-2)


def test_memory_is_bounded_by_chunks(monkeypatch):
    """A grid whose N x N matrix has 2.4M entries runs with no intermediate above one tile's budget."""
    grid = (8, 12, 16)
    tokens = math.prod(grid)
    q, k, v = peaked_random_qkv(grid, heads=1, dim=8)
    unchunked = monarch_attention_reference(q, k, v, grid, iterations=2, exact_local=0)

    largest = []
    einsum = torch.einsum

    def recording_einsum(*args, **kwargs):
        result = einsum(*args, **kwargs)
        largest.append(result.numel())
        return result

    monkeypatch.setattr(torch, "einsum", recording_einsum)
    # One query tile (12 x 16 tokens) costs 192 * 192 local logits, or 8 tiles * 192 * 16 for R:
    # the budget admits a single (head, query tile) pair per chunk.
    budget = 40_000
    out = monarch_attention_reference(q, k, v, grid, iterations=2, exact_local=0, max_chunk_elements=budget)
    assert max(largest) <= budget
    assert max(largest) * 50 < q.shape[0] * q.shape[1] * tokens * tokens
    torch.testing.assert_close(out, unchunked, atol=EXACT_ATOL, rtol=0)


def test_backends():
    q, k, v = structured_qkv(GRID)
    reference_out = monarch_attention_reference(q, k, v, GRID)
    torch.testing.assert_close(monarch_attention(q, k, v, GRID, backend="torch"), reference_out)
    torch.testing.assert_close(monarch_attention(q, k, v, GRID, backend="auto"), reference_out)
    with pytest.raises(RuntimeError, match="backend='triton'"):
        monarch_attention(q, k, v, GRID, backend="triton")
    with pytest.raises(ValueError, match="backend must be one of"):
        monarch_attention(q, k, v, GRID, backend="flash")


class _CudaLike:
    """Stands in for a CUDA tensor: the dispatch only asks ``is_cuda``."""

    is_cuda = True
    device = "cuda"


def test_auto_uses_a_registered_triton_backend_and_falls_back_when_it_cannot_serve(monkeypatch):
    monkeypatch.setattr(monarch, "_registry", {})
    monkeypatch.setattr(monarch, "_discovered", True)
    layout = monarch_layout(GRID, 192, 192)
    fake = monarch.MonarchBackend(
        name="triton",
        run=lambda *args, **kwargs: None,
        unsupported=lambda q, k, v, lay, iterations, exact_local: (
            None if iterations == 1 else "1 iteration only"
        ),
    )
    monarch.register_backend(fake)
    q = _CudaLike()
    assert monarch._pick_backend("auto", q, q, q, layout, 1, -1) is fake
    assert monarch._pick_backend("auto", q, q, q, layout, 2, -1) is None
    assert monarch._pick_backend("torch", q, q, q, layout, 1, -1) is None
    with pytest.raises(RuntimeError, match="1 iteration only"):
        monarch._pick_backend("triton", q, q, q, layout, 2, -1)


def test_density_matches_the_blog_figure():
    """One-frame tiles at 480p: (30 + 52) / 1560 = 5.3 % of the dense cost (94.7 % sparsity)."""
    layout = monarch_layout((21, 30, 52), 21 * 1560, 21 * 1560)
    assert density(layout) == pytest.approx(82 / 1560)
    assert density(layout, iterations=2) == pytest.approx(2 * 82 / 1560)
    # exact local own frame: 1 of 21 key tiles dense, 20 by Monarch
    assert density(layout, exact_local=0) == pytest.approx((1560 + 20 * 82) / (21 * 1560))


def test_invalid_iterations_and_exact_local():
    q, k, v = structured_qkv(GRID)
    with pytest.raises(ValueError, match="iterations"):
        monarch_attention(q, k, v, GRID, iterations=0)
    with pytest.raises(ValueError, match="exact_local"):
        monarch_attention(q, k, v, GRID, exact_local=-2)


# --------------------------------------------------------------------------------------------
# 4. Exact local tiles.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("iterations", [1, 3])
@pytest.mark.parametrize("query_frames", [None, 2], ids=["full", "chunk"])
def test_exact_local_covering_every_key_tile_is_dense(iterations, query_frames):
    q, k, v = structured_qkv(GRID, query_frames)
    out = monarch_attention(q, k, v, GRID, h_split=2, iterations=iterations, exact_local=GRID[0])
    torch.testing.assert_close(out, dense(q, k, v), atol=EXACT_ATOL, rtol=0)


@pytest.mark.parametrize(
    "grid,tiling,exact_local",
    [((4, 6, 8), dict(), 0), ((4, 6, 8), dict(h_split=2, w_split=2), 1), ((4, 6, 8), dict(tile_frames=2), 0)],
    ids=str,
)
@pytest.mark.parametrize("iterations", [1, 2])
@pytest.mark.parametrize("chunk", [False, True], ids=["full", "chunk"])
def test_exact_local_matches_literal_joint_softmax(grid, tiling, exact_local, iterations, chunk):
    query_frames = tiling.get("tile_frames", 1) if chunk else None
    q, k, v = structured_qkv(grid, query_frames, seed=7)
    out = monarch_attention(q, k, v, grid, iterations=iterations, exact_local=exact_local, **tiling)
    expected = literal(q, k, v, grid, iterations=iterations, exact_local=exact_local, **tiling)
    torch.testing.assert_close(out, expected, atol=EXACT_ATOL, rtol=0)


@pytest.mark.parametrize("iterations", [1, 2])
@pytest.mark.parametrize("query_frames", [None, 2], ids=["full", "chunk"])
def test_exact_local_lowers_the_error_on_structured_inputs(iterations, query_frames):
    grid = (6, 6, 8)
    q, k, v = structured_qkv(grid, query_frames, seed=3)
    reference_out = dense(q, k, v)
    errors = [
        rel_l2(monarch_attention(q, k, v, grid, iterations=iterations, exact_local=r), reference_out)
        for r in (-1, 0, 1)
    ]
    assert errors[0] > errors[1] > errors[2]


# --------------------------------------------------------------------------------------------
# 5. Keys outside the grid (text tokens of a joint attention, reference or guide frames).
# --------------------------------------------------------------------------------------------


def extra_keys(q, count=5, seed=11, strength=1.5):
    """Keys aligned with some queries (so they take real mass) and random values."""
    gen = torch.Generator().manual_seed(seed)
    b, h, n, d = q.shape
    picks = torch.randint(0, n, (count,), generator=gen)
    extra_k = strength * q[:, :, picks] + torch.randn(b, h, count, d, generator=gen, dtype=q.dtype)
    return extra_k, 3.0 * torch.randn(b, h, count, d, generator=gen, dtype=q.dtype)


@pytest.mark.parametrize(
    "grid,tiling,exact_local",
    [((4, 6, 8), dict(), -1), ((4, 6, 8), dict(), 0), ((4, 6, 8), dict(h_split=2, w_split=2), 1),
     ((4, 6, 8), dict(tile_frames=2), -1)],
    ids=str,
)  # fmt: skip
@pytest.mark.parametrize("iterations", [1, 2])
@pytest.mark.parametrize("chunk", [False, True], ids=["full", "chunk"])
@pytest.mark.parametrize("extra_bias", [0.0, math.log(0.3)], ids=["unbiased", "biased"])
def test_extra_keys_match_literal_joint_softmax(grid, tiling, exact_local, iterations, chunk, extra_bias):
    query_frames = tiling.get("tile_frames", 1) if chunk else None
    q, k, v = structured_qkv(grid, query_frames, seed=9)
    extra_k, extra_v = extra_keys(q)
    settings = dict(iterations=iterations, exact_local=exact_local, **tiling)
    out = monarch_attention(q, k, v, grid, extra_k=extra_k, extra_v=extra_v, extra_bias=extra_bias, **settings)
    expected = literal(q, k, v, grid, extra_k=extra_k, extra_v=extra_v, extra_bias=extra_bias, **settings)
    torch.testing.assert_close(out, expected, atol=EXACT_ATOL, rtol=0)
    assert rel_l2(out, monarch_attention(q, k, v, grid, **settings)) > 1e-2  # the extras carry mass


@pytest.mark.parametrize("exact_local", [-1, 1])
@pytest.mark.parametrize("query_frames", [None, 2], ids=["full", "chunk"])
@pytest.mark.parametrize("extra_bias", [0.0, math.log(0.5)], ids=["unbiased", "biased"])
def test_extra_keys_with_exact_tiles_are_dense_attention_over_all_keys(exact_local, query_frames, extra_bias):
    """One row per tile (Monarch exact) or every tile local: dense attention over grid and extra keys, the
    extra keys' logits raised by ``extra_bias`` (an additive mask on them)."""
    q, k, v = structured_qkv(GRID, query_frames)
    extra_k, extra_v = extra_keys(q, count=4)
    bias = torch.zeros(1, 1, 1, k.shape[2] + 4, dtype=q.dtype)
    bias[..., k.shape[2] :] = extra_bias
    expected = dense(q, torch.cat([k, extra_k], dim=2), torch.cat([v, extra_v], dim=2), bias)
    tiling = dict(h_split=GRID[1]) if exact_local < 0 else dict(h_split=2, exact_local=GRID[0])
    out = monarch_attention(q, k, v, GRID, iterations=2, extra_k=extra_k, extra_v=extra_v, extra_bias=extra_bias,
                            **tiling)  # fmt: skip
    torch.testing.assert_close(out, expected, atol=EXACT_ATOL, rtol=0)


def test_extra_keys_in_small_pieces(monkeypatch):
    """The extras' dense attention goes in pieces of bounded size: same result."""
    from rtv.kernels.monarch import extra_keys as extra_module

    q, k, v = structured_qkv(GRID)
    extra_k, extra_v = extra_keys(q)
    whole = monarch_attention(q, k, v, GRID, exact_local=0, extra_k=extra_k, extra_v=extra_v)
    monkeypatch.setattr(extra_module, "MAX_LOGITS", 7)
    pieces = monarch_attention(q, k, v, GRID, exact_local=0, extra_k=extra_k, extra_v=extra_v)
    torch.testing.assert_close(pieces, whole, atol=EXACT_ATOL, rtol=0)


def test_an_extra_bias_needs_extra_keys_and_a_finite_value():
    q, k, v = structured_qkv(GRID)
    with pytest.raises(ValueError, match="pass extra_k, extra_v"):
        monarch_attention(q, k, v, GRID, extra_bias=-1.0)
    extra_k, extra_v = extra_keys(q)
    with pytest.raises(ValueError, match="extra_bias must be finite"):
        monarch_attention(q, k, v, GRID, extra_k=extra_k, extra_v=extra_v, extra_bias=-math.inf)


def test_attention_with_biased_extras_is_masked_dense_attention():
    """The exact attention anchor memory's own queries get: grid keys plus extra keys with a bias on their
    logits, two parts merged, equal to one softmax with an additive mask."""
    from rtv.kernels.monarch.extra_keys import attention_with_biased_extras

    q, k, v = structured_qkv(GRID)
    extra_k, extra_v = extra_keys(q, count=5)
    queries = q[:, :, :7]
    bias = torch.zeros(1, 1, 1, k.shape[2] + 5, dtype=q.dtype)
    bias[..., k.shape[2] :] = math.log(0.3)
    expected = dense(queries, torch.cat([k, extra_k], dim=2), torch.cat([v, extra_v], dim=2), bias)
    out = attention_with_biased_extras(queries, (k, v), (extra_k, extra_v), math.log(0.3))
    torch.testing.assert_close(out, expected, atol=EXACT_ATOL, rtol=0)


@pytest.mark.parametrize(
    "extra,words",
    [((True, False), "come together"), ((torch.zeros(1, 2, 3, 5), None), "head_dim"),
     ((torch.zeros(1, 2, 3, 16), torch.zeros(1, 2, 4, 16)), "must match"),
     ((torch.zeros(1, 2, 0, 16), torch.zeros(1, 2, 0, 16)), "no tokens")],
    ids=["one_missing", "head_dim", "tokens", "empty"],
)  # fmt: skip
def test_bad_extra_keys_say_what_is_wrong(extra, words):
    q, k, v = structured_qkv(GRID)
    extra_k, extra_v = extra
    if extra_k is True:
        extra_k, extra_v = torch.zeros(1, 2, 3, 16), None
    if extra_v is None and words != "come together":
        extra_v = torch.zeros(1, 2, 3, 5)
    with pytest.raises(ValueError, match=words):
        monarch_attention(q, k, v, GRID, extra_k=extra_k, extra_v=extra_v)
