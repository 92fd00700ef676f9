"""Triton backend of Monarch attention: checks, block sizes, scratch, launches, and the opaque op.

The meaning is ``reference.monarch_attention_reference``; the kernels are split by stage:

* ``triton_local``  exact local tiles (dense over nearby key tiles), when ``exact_local >= 0``;
* ``triton_stage1`` the R softmax per (query tile, key tile, key row) -> aL, cL (and Y when final);
  on Hopper ``gluon_stage1`` (warp-specialised, TMA) is a tuner candidate for the same stage;
* ``triton_stage2`` the L softmax per (query tile, query column) -> the output, or (``refine``,
  non-final iterations) the next iteration's queries aR; on Hopper ``gluon_refine`` (a column's aL held
  in shared memory, read from DRAM about once) is a tuner candidate for the refine.

Per iteration the intermediates aL, Y (float16 for 16-bit inputs), cL (float32) and, before a later
iteration, aR (input dtype) go through GPU memory: for one
query tile they are ``key_tiles`` times the size of a tile of K. Query tiles are processed in
chunks so this scratch stays within ``scratch_plan.scratch_budget_bytes`` (a quarter of the free
device memory, 1-8 GiB, or ``RTV_MONARCH_SCRATCH_MB``). Why two stages rather
than one fused kernel: bench/notes_monarch_triton.md.

The whole forward is one ``torch.library.custom_op`` (``rtv_monarch::forward``) with a fake
implementation, so torch.compile sees a single opaque op. Block sizes are tuned once per shape
class and kept on disk (``autotune_cache``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton
from torch import Tensor

from . import MonarchBackend, cudnn_local, gluon_refine, gluon_stage1, register_backend
from .autotune_cache import Config, pick_config
from .extra_keys import extra_attention, merge_into
from .reference import EXACT_LOCAL_OFF, MonarchLayout, monarch_layout, to_tiles
from .scratch_plan import SCRATCH_ENV, chunk_bounds, head_slices, query_tiles_per_chunk, scratch_budget_bytes
from .triton_local import monarch_local_kernel
from .triton_stage1 import monarch_stage1_kernel
from .triton_stage2 import monarch_refine_kernel, monarch_stage2_kernel
from .triton_tiles import geometry_args

LOG2E = 1.4426950408889634
"""Kernels work in log2 units (exp2 is the fast instruction): logits are pre-multiplied by this."""

HEADS_ENV = "RTV_MONARCH_HEADS_PER_LAUNCH"
"""Heads per launch, fixed (unset or 0: planned by ``scratch_plan.head_slices``). With few heads and a
small scratch budget the intermediates of one launch fit in L2, so stage 2 reads them before they
reach DRAM (an experiment of bench/attention.py --l2-sweep: more, smaller launches against fewer DRAM
bytes)."""

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
HEAD_DIMS = (16, 32, 64, 128, 256)
"""Power-of-two head dims (a Triton block dimension); 16 is the tensor-core minimum."""

MIN_BLOCK = 16
"""Smallest block along a dot's reduction dimension that the tensor cores take."""

MAX_ROWS_PER_TILE = 256
"""Stage 2 keeps all b1 rows of a query column in one block (its accumulator is b1 x D floats)."""

MAX_GRID_DIM = 65535
"""CUDA limit on grid dimensions 1 and 2 (key rows of the stage-1 grid, and heads x batch)."""

MAX_BLOCK_I = 128
"""Key columns per stage-1 block; wider tiles loop with an online softmax."""

PAD_WASTE_FOR_SMALL_I = 1.3
"""When padding b2 to a power of two wastes more than this factor, also try 32-column blocks."""

TUNE_WARMUP_MS = 10
TUNE_REP_MS = 40


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)  # triton.cdiv is a JIT function: calling it from Python costs microseconds


# --------------------------------------------------------------------------------------------
# Which calls the kernels serve
# --------------------------------------------------------------------------------------------


def unsupported(
    q: Tensor, k: Tensor, v: Tensor, layout: MonarchLayout, iterations: int, exact_local: int
) -> str | None:
    """None when the Triton kernels serve this call, else why not (the dispatcher falls back)."""
    if not (q.is_cuda and k.is_cuda and v.is_cuda):
        return "the Triton kernels need CUDA tensors"
    if not (q.device == k.device == v.device):
        return f"q, k, v are on different devices ({q.device}, {k.device}, {v.device})"
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        return "q, k, v must be [batch, heads, tokens, head_dim]"
    if q.dtype not in SUPPORTED_DTYPES or not (q.dtype == k.dtype == v.dtype):
        return (
            f"dtypes must be one of float16, bfloat16, float32 and equal, got {q.dtype}, {k.dtype}, {v.dtype}"
        )
    head_dim = q.shape[-1]
    if head_dim not in HEAD_DIMS or k.shape[-1] != head_dim or v.shape[-1] != head_dim:
        return f"head_dim must be one of {HEAD_DIMS} for q, k and v, got {q.shape[-1]}, {k.shape[-1]}, {v.shape[-1]}"
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        return "q, k, v must share batch and heads, k and v the tokens"
    if int(iterations) != iterations or iterations < 1:
        return f"iterations must be an int >= 1, got {iterations!r}"
    if int(exact_local) != exact_local or exact_local < EXACT_LOCAL_OFF:
        return f"exact_local must be -1 or >= 0, got {exact_local!r}"
    if layout.b1 > MAX_ROWS_PER_TILE:
        return (
            f"a tile has b1={layout.b1} rows (tile_frames x h / h_split), the kernels take at most "
            f"{MAX_ROWS_PER_TILE}: raise h_split or lower tile_frames"
        )
    if layout.key_tiles * layout.b1 > MAX_GRID_DIM or q.shape[0] * q.shape[1] > MAX_GRID_DIM:
        return "too many key rows or heads for one launch"
    return None


# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------


STAGE1_REVISION = 12
"""Part of stage 1's tune key: a kernel change that moves its registers re-tunes stored choices
(2: aL stored before Y is computed, 194 -> 164 registers; 3: two column blocks for 80 columns;
4: padding columns masked in the scaling FFMA, 1045 -> 976 instructions per key tile; one-tile
programs skip key tiles whose pairs are all attended exactly; 5: every program steps over the key
tiles attended exactly by its whole pair block; 6: HALF_D candidates; 7: BF16_PRODUCTS candidates; 8: the Gluon kernel's candidates;
9: Gluon: aL's store overlaps Y's product, idle warpgroups skip the products, later iterations' aR in the input dtype; 10: Gluon CTAs of 11 and 21 key tiles;
11: Gluon FP16_KEYS candidates, earlier iterations load keys alone; 12: a Gluon PLAIN_STORES candidate)."""

REFINE_REVISION = 4
"""Part of refine's tune key, so stored choices meet new candidates (2: ``REVERSE``; 3: the Gluon refine; 4: its
cL and next queries loaded a step early, which may now win where the Triton refine did)."""


def _two_column_blocks(b2: int) -> tuple[int, int] | None:
    """(first, second) power-of-two column blocks that cover b2 with fewer padded columns than one
    block (80 -> (64, 16)); None when one block is as tight or b2 fits one 64-column block."""
    first = _next_pow2(b2) // 2
    if first < 64 or first >= b2:
        return None
    second = max(MIN_BLOCK, _next_pow2(b2 - first))
    return (first, second) if first + second < _next_pow2(b2) else None


def stage1_candidates(b2: int, bf16_products: int = 0, gluon: bool = False) -> list[Config]:
    """First = default. 8 warps keep the float32 aL/Y tiles in registers without spilling (ptxas);
    several key tiles per program let Triton prefetch the next tile's keys (cp.async pipelining);
    the last base candidate is v1 (one key tile per program, the fastest on the first H200 run).

    ``bf16_products`` (bfloat16 inputs; 2 in the first iteration, else 1): the 4-warp candidates
    again with that ``BF16_PRODUCTS`` level, when the columns fit one block. ``gluon`` (where
    ``gluon_stage1.serves``): the warp-specialised Hopper kernel's candidates too."""
    block_i = min(max(MIN_BLOCK, _next_pow2(b2)), MAX_BLOCK_I)
    configs = [
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 4, "num_warps": 8, "num_stages": 2},
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2},
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 8, "num_warps": 8, "num_stages": 3},
        {"BLOCK_P": 128, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 4, "num_warps": 8, "num_stages": 2},
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 1, "num_warps": 4, "num_stages": 1},
        # register caps (ptxas, sm_90a, 52 columns): 3 programs per SM at 168 (the 4-tile pipeline
        # spills 48 bytes there), 4 at 128 (112 bytes spilled); uncapped they take 164 and 250.
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2, "maxnreg": 168},
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 1, "num_warps": 4, "num_stages": 1, "maxnreg": 128},
        # one tile per program skips blocks of exact local pairs (174 registers uncapped: 2 per SM)
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 1, "num_warps": 4, "num_stages": 1, "maxnreg": 168},
        # aL and Y in two halves of the head dim (ptxas, 52 columns, D 128): the 4-tile pipeline fits
        # 168 registers without spilling (104 bytes before) and 128 with 56; one tile takes 126: 4 per SM
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2, "maxnreg": 168,
         "HALF_D": True},
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2, "maxnreg": 128,
         "HALF_D": True},
        {"BLOCK_P": 64, "BLOCK_I": block_i, "TILES_PER_PROGRAM": 1, "num_warps": 4, "num_stages": 1, "HALF_D": True},
    ]
    split = _two_column_blocks(b2)
    if split is not None:  # e.g. 80 columns as 64 + 16: no padding to 128, no online rescaling
        first, second = split
        configs += [
            {"BLOCK_P": 64, "BLOCK_I": first, "BLOCK_I2": second, "TILES_PER_PROGRAM": 1, "num_warps": 4, "num_stages": 1},
            {"BLOCK_P": 64, "BLOCK_I": first, "BLOCK_I2": second, "TILES_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2},
            {"BLOCK_P": 64, "BLOCK_I": first, "BLOCK_I2": second, "TILES_PER_PROGRAM": 1, "num_warps": 4, "num_stages": 1,
             "maxnreg": 168},
            {"BLOCK_P": 64, "BLOCK_I": first, "BLOCK_I2": second, "TILES_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2,
             "maxnreg": 168},
            # halves of the head dim: 4 tiles at 168 registers spill 24 bytes (144 before); one tile takes 152
            {"BLOCK_P": 64, "BLOCK_I": first, "BLOCK_I2": second, "TILES_PER_PROGRAM": 4, "num_warps": 4, "num_stages": 2,
             "maxnreg": 168, "HALF_D": True},
            {"BLOCK_P": 64, "BLOCK_I": first, "BLOCK_I2": second, "TILES_PER_PROGRAM": 1, "num_warps": 4, "num_stages": 1,
             "HALF_D": True},
        ]  # fmt: skip
    if bf16_products and block_i >= b2:
        # no bfloat16 -> float16 conversion of the key tiles in registers (sm_90a SASS per 4-tile program:
        # 480p's 2064 -> 1776 instructions at level 2, shared-memory loads 43 -> 8; 720p's 2808 -> 2424)
        configs += [{**c, "BF16_PRODUCTS": bf16_products} for c in configs if c["num_warps"] == 4]
    if block_i > 32 and block_i / b2 > PAD_WASTE_FOR_SMALL_I:
        configs += [
            {"BLOCK_P": 64, "BLOCK_I": 32, "TILES_PER_PROGRAM": 4, "num_warps": 8, "num_stages": 3},
            {"BLOCK_P": 128, "BLOCK_I": 32, "TILES_PER_PROGRAM": 4, "num_warps": 8, "num_stages": 3},
        ]
    if gluon:
        configs += [dict(c) for c in gluon_stage1.CANDIDATES]
    return configs


STAGE2_CANDIDATES: list[Config] = [
    {"BLOCK_C": 64, "num_warps": 4, "num_stages": 2},
    {"BLOCK_C": 64, "num_warps": 4, "num_stages": 3},
    {"BLOCK_C": 128, "num_warps": 8, "num_stages": 2},
    {"BLOCK_C": 64, "num_warps": 8, "num_stages": 3},
]

REFINE_CANDIDATES: list[Config] = [
    {"BLOCK_C": 64, "num_warps": 4, "num_stages": 2},
    {"BLOCK_C": 32, "num_warps": 4, "num_stages": 2},
    {"BLOCK_C": 128, "num_warps": 8, "num_stages": 2},
    {"BLOCK_C": 64, "num_warps": 4, "num_stages": 2, "REVERSE": True},
]
"""``REVERSE``: pass 2 walks back over what pass 1 just read, to find it in L2 (triton_stage2); H100:
480p 2.54 -> 2.33 ms, slower at 720p, whose 242 KB columns L2 cannot keep. Reversed walks with 8 warps
and deeper pipelines (fewer programs per SM, so more of each column in L2) were 1.06-2.3x slower at
every shape and are not offered (bench/results/monarch_refine_candidates_h100_session12.json)."""

LOCAL_CANDIDATES: list[Config] = [
    {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2},
    {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2},
]
CUDNN_LOCAL: Config = {"impl": "cudnn"}
"""Whole-frame tiles can take their exact local part from cuDNN's attention (``cudnn_local``); the
autotuner times it against the Triton kernels like any other candidate."""


@functools.cache
def _device_tag(index: int) -> str:
    return f"{torch.cuda.get_device_name(index)}|triton={triton.__version__}"


def _tune_key(q: Tensor, kernel: str, **shape: object) -> str:
    return _tune_key_text(q.device.type, q.device.index or 0, q.dtype, kernel, tuple(sorted(shape.items())))


@functools.lru_cache(maxsize=4096)
def _tune_key_text(device_type: str, index: int, dtype: torch.dtype, kernel: str, shape: tuple) -> str:
    """Built once per distinct key: it is looked up for every launch (host time per call matters in
    few-step samplers, bench/attention.py --overhead)."""
    device = _device_tag(index) if device_type == "cuda" else f"{device_type}|triton={triton.__version__}"
    parts = ",".join(f"{k}={v}" for k, v in shape)
    return f"{device}|{kernel}|{str(dtype).removeprefix('torch.')}|{parts}"


def _choose(key: str, candidates: list[Config], launch: Callable[[Config], None]) -> Config:
    """Tune ``launch`` over ``candidates`` once per key (in memory and on disk)."""
    chosen = _chosen.get(key)
    if chosen is None:
        if not torch.cuda.is_available():  # Triton's interpreter (CPU development): no timing
            chosen = dict(candidates[0])
        else:

            def measure(config: Config) -> float:
                return triton.testing.do_bench(
                    lambda: launch(config), warmup=TUNE_WARMUP_MS, rep=TUNE_REP_MS, return_mode="median"
                )

            device, stream = torch.cuda.current_device(), torch.cuda.current_stream()

            def first_launch(config: Config) -> None:  # compiles; from a worker thread, on the caller's stream
                torch.cuda.set_device(device)
                with torch.cuda.stream(stream):
                    launch(config)

            chosen = pick_config(key, candidates, measure, prepare=first_launch)
        _chosen[key] = chosen
    return chosen


_chosen: dict[str, Config] = {}


# --------------------------------------------------------------------------------------------
# The forward pass
# --------------------------------------------------------------------------------------------


def scratch_dtype_for(input_dtype: torch.dtype) -> torch.dtype:
    """aL and Y: float16 for 16-bit inputs (stage 2 exponentiates q . aL, so bfloat16's 8-bit mantissa
    cost 1e-2 of relative error on the H200; float16 has 11 bits and the range of attention
    activations), float32 for float32 inputs."""
    return torch.float32 if input_dtype == torch.float32 else torch.float16


@dataclass
class _Plan:
    """Everything the launches of one forward share (tensors, strides, scalars)."""

    q: Tensor
    k: Tensor
    v: Tensor
    out: Tensor
    layout: MonarchLayout
    qk_scale: float
    exact_local: int
    poison_scratch: bool
    extra_k: Tensor | None = None
    extra_v: Tensor | None = None
    extra_bias: float = 0.0

    @property
    def groups(self) -> int:
        return self.q.shape[0] * self.q.shape[1]

    @property
    def head_dim(self) -> int:
        return self.q.shape[-1]

    @property
    def has_local_tiles(self) -> bool:
        return self.exact_local >= 0

    @property
    def has_local(self) -> bool:
        """An exact part seeds stage 2's statistics: local tiles, keys outside the grid, or both."""
        return self.exact_local >= 0 or self.extra_k is not None

    @property
    def key_rows(self) -> int:
        return self.layout.key_tiles * self.layout.b1

    def constexprs(self) -> dict[str, object]:
        return {
            "HEAD_DIM": self.head_dim,
            "DOT_PRECISION": "ieee" if self.q.dtype == torch.float32 else "tf32",
        }

    def strides(self, x: Tensor) -> tuple[int, int, int]:
        return x.stride(0), x.stride(1), x.stride(2)

    @property
    def scratch_dtype(self) -> torch.dtype:
        return scratch_dtype_for(self.q.dtype)

    @property
    def query_scratch_dtype(self) -> torch.dtype:
        """aR, the later iterations' queries: the input dtype, as precise as the first iteration's
        queries (the inputs themselves). In the float32 reference, aR rounded to bfloat16 moves the
        iterations-2/3 output by 2.5-5e-4 relative L2 (float16: 3-8e-5); float16 aR against bfloat16
        keys cost the Gluon stage 1 a second logits product and a shallower TMA ring."""
        return self.q.dtype

    def scratch(self, *shape: int, dtype: torch.dtype) -> Tensor:
        if self.poison_scratch:
            return torch.full(shape, float("nan"), dtype=dtype, device=self.q.device)
        return torch.empty(shape, dtype=dtype, device=self.q.device)


@dataclass
class _Chunk:
    """Scratch of one chunk of query tiles ``[first_tile, first_tile + tiles)``."""

    first_tile: int
    tiles: int
    aL: Tensor
    Y: Tensor
    cL: Tensor
    aR: Tensor
    local_out: Tensor
    local_lse: Tensor

    @classmethod
    def allocate(cls, plan: _Plan, first_tile: int, tiles: int, iterations: int) -> _Chunk:
        lay, g, d, dtype = plan.layout, plan.groups, plan.head_dim, plan.scratch_dtype
        aL, Y = plan.scratch(2, g, tiles, lay.b2, plan.key_rows, d, dtype=dtype).unbind(0)  # one allocation
        # the final iteration's cL is key-row major [g, key rows, pairs], earlier ones' pair-major
        # [g, pairs, key rows] (triton_stage1's docstring): one buffer of either shape
        cL = plan.scratch(g, plan.key_rows, tiles * lay.b2, dtype=torch.float32)
        aR = plan.scratch(g, tiles, plan.key_rows, lay.b2, d, dtype=plan.query_scratch_dtype) if iterations > 1 else aL
        if plan.has_local:
            local_out = plan.scratch(g, tiles, lay.b2, lay.b1, d, dtype=torch.float32)
            local_lse = plan.scratch(g, tiles, lay.b2, lay.b1, dtype=torch.float32)
        else:  # never read: the kernels only touch them when HAS_LOCAL
            local_out = local_lse = cL
        return cls(first_tile, tiles, aL, Y, cL, aR, local_out, local_lse)

    def tile_args(self, plan: _Plan) -> tuple[int, int, int]:
        return plan.q.shape[1], self.first_tile, self.tiles


def _launch_local(plan: _Plan, chunk: _Chunk, config: Config) -> None:
    """The exact local tiles (cuDNN's attention over gathered windows, or the Triton flash loop)."""
    lay = plan.layout
    if config.get("impl") == "cudnn":
        try:
            cudnn_local.local_tiles_into(
                chunk.local_out, chunk.local_lse, plan.q, plan.k, plan.v, lay, chunk.first_tile, chunk.tiles,
                plan.exact_local, plan.qk_scale / LOG2E,
            )  # fmt: skip
            return
        except RuntimeError:  # a shape cuDNN declines: the Triton kernel serves every call
            if torch.cuda.is_current_stream_capturing():
                raise
            config = LOCAL_CANDIDATES[0]
    grid = (_cdiv(lay.b1 * lay.b2, config["BLOCK_M"]), chunk.tiles, plan.groups)
    monarch_local_kernel[grid](
        plan.q, plan.k, plan.v, chunk.local_out, chunk.local_lse,
        *plan.strides(plan.q), *plan.strides(plan.k), *plan.strides(plan.v),
        *chunk.tile_args(plan), lay.b1, lay.b2, *geometry_args(lay),
        lay.query_group_offset, lay.key_groups, max(plan.exact_local, 0), plan.qk_scale,
        **plan.constexprs(), **config,
    )  # fmt: skip


Launcher = Callable[[_Plan, _Chunk], None]
"""One kernel launch with its grid, scalars and block sizes fixed: given the call's tensors it only
launches (the few-step causal sampler pays host time per attention call, bench/host_probe.py)."""


def _launch_extra(plan: _Plan, chunk: _Chunk) -> None:
    """The keys outside the grid, attended exactly by the chunk's queries, merged into (or, without
    local tiles, written as) the chunk's exact part (``extra_keys.py``)."""
    lay, g, d = plan.layout, plan.groups, plan.head_dim
    out = None
    if cudnn_local.serves(plan.q, lay):  # whole-frame tiles: the chunk's queries are one token range
        tokens = lay.b1 * lay.b2
        queries = plan.q[:, :, chunk.first_tile * tokens : (chunk.first_tile + chunk.tiles) * tokens]
        try:
            out, lse = cudnn_local.cudnn_attention(queries, plan.extra_k, plan.extra_v, plan.qk_scale / LOG2E)
            out = out.reshape(g, chunk.tiles, lay.b1, lay.b2, d)
            lse = lse.reshape(g, chunk.tiles, lay.b1, lay.b2)
        except RuntimeError:  # a shape cuDNN declines: the torch path below serves every call
            if torch.cuda.is_current_stream_capturing():
                raise
            out = None
    if out is None:  # tiles split within frames, float32 inputs, or declined by cuDNN: torch, in float32
        queries = to_tiles(plan.q.flatten(0, 1), lay)[:, chunk.first_tile : chunk.first_tile + chunk.tiles]
        keys, values = plan.extra_k.flatten(0, 1), plan.extra_v.flatten(0, 1)  # [g, Ne, D]
        out, lse = extra_attention(queries, keys, values, plan.qk_scale / LOG2E)
    # stage 2's [g, tiles, b2, b1] order, log2; the bias on the extra keys' logits adds to their log-mass
    out, lse = out.transpose(2, 3), (lse.transpose(2, 3) + plan.extra_bias) * LOG2E
    if plan.has_local_tiles:
        merge_into(chunk.local_out, chunk.local_lse, out, lse, base2=True)
    else:
        chunk.local_out.copy_(out)
        chunk.local_lse.copy_(lse)


def _local_launcher(plan: _Plan, chunk: _Chunk, config: Config) -> Launcher:
    return functools.partial(_launch_local, config=config)


def _stage1_launcher(plan: _Plan, chunk: _Chunk, config: Config, *, first: bool, final: bool) -> Launcher:
    lay = plan.layout
    if config.get("impl") == "gluon":
        gluon = gluon_stage1.launcher(plan.q, lay, chunk.first_tile, chunk.tiles, plan.exact_local, plan.qk_scale,
                                      config, first_iteration=first, final=final)  # fmt: skip

        def launch_gluon(plan: _Plan, chunk: _Chunk) -> None:
            gluon(plan.q, plan.k, plan.v, chunk.aR, chunk.aL, chunk.Y, chunk.cL)

        return launch_gluon
    key_tile_blocks = _cdiv(lay.key_tiles, config["TILES_PER_PROGRAM"])
    grid = (_cdiv(chunk.tiles * lay.b2, config["BLOCK_P"]), key_tile_blocks * lay.b1, plan.groups)
    kernel = monarch_stage1_kernel[grid]
    scalars = (
        *plan.strides(plan.q), *plan.strides(plan.k), *plan.strides(plan.v),
        *chunk.tile_args(plan), lay.key_tiles, lay.b1, lay.b2, *geometry_args(lay),
        lay.query_group_offset, max(plan.exact_local, 0), plan.qk_scale,
    )  # fmt: skip
    one_block = config["BLOCK_I"] + config.get("BLOCK_I2", 0) >= lay.b2
    blocks = dict(FIRST=first, FINAL=final, HAS_LOCAL=plan.has_local_tiles, ONE_I_BLOCK=one_block,
                  **plan.constexprs(), **{"BLOCK_I2": 0, **config})  # fmt: skip
    blocks.pop("HALF_D", None)
    if config.get("HALF_D") and one_block and plan.head_dim >= 2 * MIN_BLOCK:
        blocks["HALF_D"] = True  # passed only when set: older stage-1 kernels (bench/monarch_ab.py) lack it
    level = blocks.pop("BF16_PRODUCTS", 0)
    if level and one_block and plan.q.dtype == torch.bfloat16:  # the streamed-column path: float16 only
        blocks["BF16_PRODUCTS"] = level if first else 1  # later iterations' queries are float16 scratch

    def launch(plan: _Plan, chunk: _Chunk) -> None:
        kernel(plan.q, plan.k, plan.v, chunk.aR, chunk.aL, chunk.Y, chunk.cL, *scalars, **blocks)

    return launch


def _stage2_args(plan: _Plan, chunk: _Chunk) -> tuple:
    lay = plan.layout
    return (
        *chunk.tile_args(plan), lay.key_tiles, lay.b1, lay.b2, *geometry_args(lay),
        lay.query_group_offset, lay.key_groups, plan.exact_local, plan.qk_scale,  # -1: no local range
    )  # fmt: skip


def _block_l(plan: _Plan) -> int:
    return max(MIN_BLOCK, _next_pow2(plan.layout.b1))


def _stage2_launcher(plan: _Plan, chunk: _Chunk, config: Config) -> Launcher:
    kernel = monarch_stage2_kernel[(chunk.tiles * plan.layout.b2, plan.groups)]
    scalars = (*plan.strides(plan.q), *plan.strides(plan.out), *_stage2_args(plan, chunk))
    blocks = dict(BLOCK_L=_block_l(plan), HAS_LOCAL=plan.has_local, **plan.constexprs(), **config)

    def launch(plan: _Plan, chunk: _Chunk) -> None:
        kernel(plan.q, chunk.aL, chunk.Y, chunk.cL, chunk.local_out, chunk.local_lse, plan.out, *scalars, **blocks)

    return launch


def _refine_launcher(plan: _Plan, chunk: _Chunk, config: Config) -> Launcher:
    if config.get("impl") == "gluon":
        gluon = gluon_refine.launcher(plan.q, plan.layout, chunk.first_tile, chunk.tiles, plan.exact_local,
                                      plan.qk_scale, has_local=plan.has_local)  # fmt: skip

        def launch_gluon(plan: _Plan, chunk: _Chunk) -> None:
            gluon(plan.q, chunk.aL, chunk.cL, chunk.local_lse, chunk.aR)

        return launch_gluon
    kernel = monarch_refine_kernel[(chunk.tiles * plan.layout.b2, plan.groups)]
    scalars = (*plan.strides(plan.q), *_stage2_args(plan, chunk))
    blocks = dict(BLOCK_L=_block_l(plan), HAS_LOCAL=plan.has_local, **plan.constexprs(), **config)

    def launch(plan: _Plan, chunk: _Chunk) -> None:
        kernel(plan.q, chunk.aL, chunk.cL, chunk.local_lse, chunk.aR, *scalars, **blocks)

    return launch


def monarch_forward_into(
    out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    layout: MonarchLayout,
    *,
    iterations: int = 1,
    scale: float | None = None,
    exact_local: int = EXACT_LOCAL_OFF,
    poison_scratch: bool = False,
    extra_k: Tensor | None = None,
    extra_v: Tensor | None = None,
    extra_bias: float = 0.0,
) -> Tensor:
    """Write Monarch attention of q ``[B, H, Nq, D]`` against k, v into ``out`` (same shape as q).

    ``poison_scratch`` fills the intermediates with NaN first (tests: every value read was written).
    ``extra_k``, ``extra_v``: keys outside the grid, attended exactly, ``extra_bias`` on their logits
    (``monarch_attention``).
    """
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    slices = _head_slices(q, layout, iterations)
    if len(slices) == 1:  # the common case takes the tensors as they are (no views to build per call)
        plan = _Plan(q, k, v, out, layout, scale * LOG2E, int(exact_local), poison_scratch, extra_k, extra_v,
                     extra_bias)
        _forward_heads(plan, iterations)
        return out
    for h in slices:
        # Head slices are views: the kernels take strides, so no copies.
        extra = (None, None) if extra_k is None else (extra_k[:, h], extra_v[:, h])
        plan = _Plan(
            q[:, h], k[:, h], v[:, h], out[:, h], layout, scale * LOG2E, int(exact_local), poison_scratch, *extra,
            extra_bias,
        )
        _forward_heads(plan, iterations)
    return out


_slices: dict[tuple, list[slice]] = {}
"""Per call shape: the head slices of its launches (planned once: the scratch budget reads free memory)."""


def _head_slices(q: Tensor, layout: MonarchLayout, iterations: int) -> list[slice]:
    batch, heads, _, head_dim = q.shape
    fixed = int(os.environ.get(HEADS_ENV, 0))
    key = (q.shape, q.dtype, q.device, layout, iterations, fixed, os.environ.get(SCRATCH_ENV))
    slices = _slices.get(key)
    if slices is None:
        if fixed:
            bounds = [(h0, min(fixed, heads - h0)) for h0 in range(0, heads, fixed)]
        else:
            elem = scratch_dtype_for(q.dtype).itemsize
            bounds = head_slices(layout, batch, heads, head_dim, elem, iterations, scratch_budget_bytes(q.device))
        if len(_slices) >= MAX_RECIPES:
            _slices.clear()
        slices = _slices[key] = [slice(h0, h0 + count) for h0, count in bounds]
    return slices


@dataclass
class _Step:
    """A launch of a recipe, valid while ``_chosen[tune_key]`` is still ``config``."""

    tune_key: str
    config: Config
    launch: Launcher


_recipes: dict[tuple, list[tuple[int, int, list[_Step]]]] = {}
"""Per call signature (shapes, strides, dtype, layout, settings): each chunk of query tiles and its
launches. Built by the first call, which also tunes; later calls only allocate scratch and launch."""

MAX_RECIPES = 512


def _recipe_key(plan: _Plan, iterations: int) -> tuple:
    q, k, v, out = plan.q, plan.k, plan.v, plan.out
    extra = None if plan.extra_k is None else (plan.extra_k.shape, plan.extra_v.shape, plan.extra_bias)
    return (q.shape, q.stride(), k.shape, k.stride(), v.stride(), out.stride(), q.dtype, q.device, plan.layout,
            plan.qk_scale, plan.exact_local, iterations, os.environ.get(SCRATCH_ENV), extra)  # fmt: skip


def _forward_heads(plan: _Plan, iterations: int) -> None:
    key = _recipe_key(plan, iterations)
    recipe = _recipes.get(key)
    if recipe is not None and all(
        not s.tune_key or _chosen.get(s.tune_key) is s.config for _, _, steps in recipe for s in steps
    ):
        try:
            for first_tile, tiles, steps in recipe:
                chunk = _Chunk.allocate(plan, first_tile, tiles, iterations)
                for step in steps:
                    step.launch(plan, chunk)
            return
        except torch.OutOfMemoryError:
            # planned when more memory was free (a model loaded since): plan again for what is free
            # now; chunks write disjoint query tiles of ``out``, so running the call again is exact
            chunk = None
            torch.cuda.empty_cache()
    recipe = _run_and_record(plan, iterations)
    if len(_recipes) >= MAX_RECIPES:
        _recipes.clear()
    _recipes[key] = recipe


def _work_bucket(programs: int) -> int:
    """Tune keys carry the launch's size to a power of 4: the best block sizes depend on how many
    programs fill the GPU (a test's few heads chose one-tile programs that cost 480p 15 % in stage 1)."""
    return 1 << (2 * max(0, (programs - 1).bit_length() // 2))


def _tuned_step(tune_key: str, candidates: list[Config], build, plan: _Plan, chunk: _Chunk) -> _Step:
    """Tune ``build(plan, chunk, config)`` once per key, launch the chosen config, return it as a step."""
    config = _choose(tune_key, candidates, lambda c: build(plan, chunk, c)(plan, chunk))
    step = _Step(tune_key, config, build(plan, chunk, config))
    step.launch(plan, chunk)
    return step


def _run_and_record(plan: _Plan, iterations: int) -> list[tuple[int, int, list[_Step]]]:
    q, lay, head_dim = plan.q, plan.layout, plan.head_dim
    elem = plan.scratch_dtype.itemsize
    budget = scratch_budget_bytes(q.device)
    chunk_tiles = query_tiles_per_chunk(lay, plan.groups, head_dim, elem, iterations, budget)
    recipe = []
    for first_tile, tiles in chunk_bounds(lay.query_tiles, chunk_tiles):
        chunk = _Chunk.allocate(plan, first_tile, tiles, iterations)
        steps = []
        if plan.has_local_tiles:
            candidates = LOCAL_CANDIDATES + ([CUDNN_LOCAL] if cudnn_local.serves(q, lay) else [])
            # cuDNN's fixed cost (window gathers) only pays off for enough query tiles per launch
            key = _tune_key(q, "local", d=head_dim, b1=lay.b1, b2=lay.b2, cudnn=CUDNN_LOCAL in candidates,
                            tiles=_next_pow2(chunk.tiles))  # fmt: skip
            steps.append(_tuned_step(key, candidates, _local_launcher, plan, chunk))
        if plan.extra_k is not None:
            steps.append(_Step("", {}, _launch_extra))
            _launch_extra(plan, chunk)
        for iteration in range(iterations):
            first, final = iteration == 0, iteration == iterations - 1
            key = _tune_key(
                q, "stage1", d=head_dim, b2=lay.b2, first=first, final=final, local=plan.has_local_tiles,
                rev=STAGE1_REVISION, work=_work_bucket(_cdiv(chunk.tiles * lay.b2, 64) * plan.key_rows * plan.groups),
            )
            stage1 = functools.partial(_stage1_launcher, first=first, final=final)
            bf16_products = 0 if q.dtype != torch.bfloat16 else 2 if first else 1
            gluon = gluon_stage1.serves(q, plan.k, plan.v, lay)
            candidates = stage1_candidates(lay.b2, bf16_products, gluon)
            steps.append(_tuned_step(key, candidates, stage1, plan, chunk))
            kernel, build, candidates = (
                ("stage2", _stage2_launcher, STAGE2_CANDIDATES)
                if final
                else ("refine", _refine_launcher,
                      REFINE_CANDIDATES + (gluon_refine.CANDIDATES if gluon_refine.serves(q, lay) else []))
            )  # fmt: skip
            revision = {} if final else {"rev": REFINE_REVISION}
            key = _tune_key(q, kernel, d=head_dim, b1=lay.b1, local=plan.has_local,
                            work=_work_bucket(chunk.tiles * lay.b2 * plan.groups), **revision)  # fmt: skip
            steps.append(_tuned_step(key, candidates, build, plan, chunk))
        recipe.append((chunk.first_tile, chunk.tiles, steps))
    return recipe


# --------------------------------------------------------------------------------------------
# The opaque op and the backend entry
# --------------------------------------------------------------------------------------------

OP_NAME = "rtv_monarch::forward"
OP_SCHEMA = (
    "(Tensor q, Tensor k, Tensor v, int frames, int height, int width, int tile_frames, int h_split, "
    "int w_split, int iterations, float scale, int exact_local, Tensor? extra_k=None, Tensor? extra_v=None, "
    "float extra_bias=0.0) -> Tensor"
)


def _forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    frames: int,
    height: int,
    width: int,
    tile_frames: int,
    h_split: int,
    w_split: int,
    iterations: int,
    scale: float,
    exact_local: int,
    extra_k: Tensor | None = None,
    extra_v: Tensor | None = None,
    extra_bias: float = 0.0,
) -> Tensor:
    layout = monarch_layout(
        (frames, height, width),
        q.shape[-2],
        k.shape[-2],
        tile_frames=tile_frames,
        h_split=h_split,
        w_split=w_split,
    )
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    return monarch_forward_into(
        out, q, k, v, layout, iterations=iterations, scale=scale, exact_local=exact_local, extra_k=extra_k,
        extra_v=extra_v, extra_bias=extra_bias,
    )


def _forward_fake(q: Tensor, k: Tensor, v: Tensor, *args: object) -> Tensor:
    return torch.empty_like(q, memory_format=torch.contiguous_format)


def _register_op() -> Callable[..., Tensor]:
    """The op, registered once per process (the pack may be imported under two package names)."""
    namespace, name = OP_NAME.split("::")
    try:
        return getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        pass
    op = torch.library.custom_op(OP_NAME, _forward, mutates_args=(), schema=OP_SCHEMA)
    op.register_fake(_forward_fake)
    return op


monarch_forward_op = _register_op()


def run(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    layout: MonarchLayout,
    *,
    iterations: int = 1,
    scale: float | None = None,
    exact_local: int = EXACT_LOCAL_OFF,
    extra_k: Tensor | None = None,
    extra_v: Tensor | None = None,
    extra_bias: float = 0.0,
) -> Tensor:
    """Backend entry used by ``monarch_attention``: the opaque op under torch.compile, else its
    implementation directly (the op's dispatch costs host time on every call, and eager callers
    such as ComfyUI's samplers gain nothing from it)."""
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    if not torch.compiler.is_compiling():
        # token-major storage ([B, N, H, D] seen as [B, H, N, D]): callers that merge the heads back
        # into [B, N, H * D] (every attention call of a DiT) get a view instead of a copy kernel
        b, h, n, d = q.shape
        out = torch.empty((b, n, h, d), dtype=q.dtype, device=q.device).transpose(1, 2)
        return monarch_forward_into(out, q, k, v, layout, iterations=int(iterations), scale=scale,
                                    exact_local=int(exact_local), extra_k=extra_k, extra_v=extra_v,
                                    extra_bias=float(extra_bias))  # fmt: skip
    return monarch_forward_op(
        q, k, v, layout.frames, layout.height, layout.width, layout.tile_frames, layout.h_split,
        layout.w_split, int(iterations), scale, int(exact_local), extra_k, extra_v, float(extra_bias),
    )  # fmt: skip


register_backend(MonarchBackend("triton", run, unsupported))

__all__ = ["monarch_forward_into", "monarch_forward_op", "run", "unsupported"]
