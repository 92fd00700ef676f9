"""Monarch attention patched into a loaded ComfyUI video model, through ComfyUI's own hooks.

Four hooks on a model clone, all undone by using the unpatched MODEL:

- ``optimized_attention_override`` (transformer_options): sees every attention call that passes
  ``transformer_options``; it runs Monarch only for calls marked as video self-attention and hands
  everything else to the override that was already on the model (a Sage or Flash patch) or to
  ComfyUI's own backend.
- the self-attention markers of ``self_attention.py`` (the block index on each video self-attention
  call: shapes alone cannot tell self- from cross-attention); stock self-attention forwards also get
  their q/k norm + RoPE fused there.
- the fused block steps of ``fused_block.py`` (modulation, LayerNorms and residuals in 3 passes instead
  of 10 kernels): not Monarch, but the same device time saved on every block of every call.
- a DIFFUSION_MODEL wrapper that records the token grid and the sampling step of each model call.
  An OUTER_SAMPLE wrapper resets and reports the statistics of one sampling run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import comfy.patcher_extension as patcher_extension
import torch

from ..kernels.monarch import autotune_cache, monarch_attention
from .cuda_graphs import EAGER, set_call_variant
from .fused_block import fuse_wan_blocks
from .self_attention import BLOCK_MARK, mark_self_attention
from .wan import TokenGrid, grid_from_newer_comfy, wan_token_grid

PATCH_KEY = "rtv_monarch"
STATE_KEY = "rtv_monarch_call"  # per model call: grid and step (transformer_options is fresh per call)
# report_error: dense reference on about this many steps per run, every block, first batch only.
REPORT_SAMPLES_PER_RUN = 4

log = logging.getLogger("RealtimeVideo")


@dataclass(frozen=True)
class MonarchSettings:
    tile_frames: int = 1
    h_split: int = 1
    w_split: int = 1
    iterations: int = 1
    exact_local: int = 1
    dense_first_steps: int = 0
    dense_last_steps: int = 0
    dense_blocks: frozenset = frozenset()
    backend: str = "auto"
    report_error: bool = False


@dataclass
class AttentionStats:
    """Counts of one sampling run; shared by every clone (deepcopy returns the same object)."""

    replaced: int = 0
    dense: int = 0
    model_calls: int = 0
    errors: dict = field(default_factory=dict)  # block -> list of relative L2 errors

    def __deepcopy__(self, memo):
        return self

    def reset(self) -> None:
        self.replaced = self.dense = self.model_calls = 0
        self.errors = {}

    def summary(self) -> str:
        text = (f"Monarch attention replaced {self.replaced} self-attention calls "
                f"({self.dense} kept dense) in {self.model_calls} model calls")
        if self.errors:
            per_block = ", ".join(f"{b}: {sum(e) / len(e):.3f}" for b, e in sorted(self.errors.items()))
            text += f"; relative L2 error vs dense per block: {per_block}"
        return text


def parse_block_list(text: str) -> frozenset:
    """'0, 2, 5-7' -> {0, 2, 5, 6, 7}; raises ValueError saying what is wrong."""
    blocks = set()
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                blocks.update(range(lo, hi + 1))
            else:
                blocks.add(int(part))
        except ValueError:
            raise ValueError(
                f"dense_blocks: cannot read {part!r}; use block numbers and ranges like '0, 1, 28-29'"
            ) from None
    return frozenset(blocks)


def check_grid_fits(grid: TokenGrid, s: MonarchSettings) -> None:
    """Raise a ValueError that tells the user which setting or size to change."""
    for axis, size, split, pixels in (("rows", grid.rows, s.h_split, "height"),
                                      ("columns", grid.cols, s.w_split, "width")):
        if size % split:
            divisors = [d for d in range(1, size + 1) if size % d == 0]
            split_name = "h_split" if axis == "rows" else "w_split"
            raise ValueError(
                f"[RTV] Monarch attention: {split_name}={split} does not divide the {size} token {axis} of this "
                f"video. Use one of {divisors}, or change the {pixels} (tokens = pixels / 16)."
            )
    if grid.frames % s.tile_frames:
        raise ValueError(
            f"[RTV] Monarch attention: tile_frames={s.tile_frames} does not divide the {grid.frames} latent frames "
            f"of this call. Use a divisor of {grid.frames} or a frame count 4*k*tile_frames+1."
        )


def _step_index(transformer_options: dict) -> tuple[int | None, int | None]:
    sample_sigmas, sigmas = transformer_options.get("sample_sigmas"), transformer_options.get("sigmas")
    if sample_sigmas is None or sigmas is None:
        return None, None
    hits = torch.nonzero(torch.isclose(sample_sigmas, sigmas[0].to(sample_sigmas))).flatten()
    total = len(sample_sigmas) - 1
    return (int(hits[0]) if len(hits) else None), total


@dataclass
class _CallState:
    grid: TokenGrid
    step: int | None
    total_steps: int | None


class MonarchPatch:
    """The hooks of one RTV_MonarchAttention node; plain callables survive ModelPatcher clones."""

    def __init__(self, settings: MonarchSettings, previous_override=None, node_id: str | None = None):
        self.settings = settings
        self.previous_override = previous_override
        self.node_id = node_id
        self.stats = AttentionStats()

    def __deepcopy__(self, memo):
        return self

    # --------------------------------------------------------------------------- hooks
    def diffusion_model_wrapper(self, executor, *args, **kwargs):
        x = args[0]
        time_dim_concat = args[4] if len(args) > 4 else kwargs.get("time_dim_concat")
        to = args[5] if len(args) > 5 else kwargs.get("transformer_options", {})
        grid = wan_token_grid(executor.class_obj, x, time_dim_concat, kwargs)
        newer = grid_from_newer_comfy(to)
        if newer is not None and newer != (grid.frames, grid.rows, grid.cols):
            grid = TokenGrid(*newer)
        check_grid_fits(grid, self.settings)
        # Finding the step compares device tensors (a device sync per model call, which stalls the
        # launch queue): only done when a setting depends on it.
        needs_step = self.settings.dense_first_steps or self.settings.dense_last_steps or self.settings.report_error
        step, total = _step_index(to) if needs_step else (None, None)
        state = _CallState(grid, step, total)
        to[STATE_KEY] = state
        if self.settings.report_error:  # reads errors back to the host: no CUDA graph
            set_call_variant(to, "monarch", EAGER)
        elif needs_step:  # a replayed graph must not freeze another step's dense/Monarch choice
            set_call_variant(to, "monarch", self._dense_step(state))
        self.stats.model_calls += 1
        return executor(*args, **kwargs)

    def outer_sample_wrapper(self, executor, *args, **kwargs):
        self.stats.reset()
        # a first run on a GPU tunes the kernels for seconds inside the first step: say so on the node
        autotune_cache.tuning_listeners.append(self.send_text)
        try:
            return executor(*args, **kwargs)
        finally:
            autotune_cache.tuning_listeners.remove(self.send_text)
            self.report()

    def override(self, func, *args, **kwargs):
        to = kwargs.get("transformer_options") or {}
        state = to.get(STATE_KEY)
        block = to.get(BLOCK_MARK)
        if state is None or block is None or not self._wants_monarch(state, block):
            if block is not None and state is not None:
                self.stats.dense += 1
            return self._dense(func, *args, **kwargs)
        q, k, v = args[:3]
        heads = kwargs.get("heads", args[3] if len(args) > 3 else None)
        skip_reshape = kwargs.get("skip_reshape", False)
        key_grid = self._key_grid(q, k, heads, skip_reshape, state.grid)
        if kwargs.get("mask") is not None or key_grid is None:
            self.stats.dense += 1
            return self._dense(func, *args, **kwargs)
        out = self._monarch(q, k, v, heads, skip_reshape, key_grid)
        self.stats.replaced += 1
        if self.settings.report_error and self._sampled_for_report(state):
            dense = self._dense(func, *args, **{**kwargs, "skip_output_reshape": True})
            err = (out.float() - dense.float()).norm() / dense.float().norm().clamp_min(1e-12)
            self.stats.errors.setdefault(block, []).append(float(err))
        if not kwargs.get("skip_output_reshape", False):
            b, h, n, d = out.shape
            out = out.transpose(1, 2).reshape(b, n, h * d)
        return out

    # --------------------------------------------------------------------------- pieces
    def _dense(self, func, *args, **kwargs):
        if self.previous_override is not None:
            return self.previous_override(func, *args, **kwargs)
        return func(*args, **kwargs)

    def _dense_step(self, state: _CallState) -> bool:
        s = self.settings
        if state.step is None:
            return False
        return state.step < s.dense_first_steps or state.step >= state.total_steps - s.dense_last_steps

    def _wants_monarch(self, state: _CallState, block: int) -> bool:
        return block not in self.settings.dense_blocks and not self._dense_step(state)

    @staticmethod
    def _key_grid(q, k, heads, skip_reshape: bool, grid: TokenGrid) -> TokenGrid | None:
        """Key-side grid of this call, or None when the tokens are not whole frames of the video grid.

        Queries are the call's own frames; keys are the same frames (bidirectional) or, under a KV
        cache, cached frames followed by them (a chunk against cached keys).
        """
        tokens_axis = 2 if skip_reshape else 1
        nk, nq = k.shape[tokens_axis], q.shape[tokens_axis]
        if grid.prefix_tokens or heads is None or nq != grid.tokens or nk < nq or nk % grid.frame_tokens:
            return None
        return TokenGrid(nk // grid.frame_tokens, grid.rows, grid.cols)

    def _monarch(self, q, k, v, heads: int, skip_reshape: bool, grid: TokenGrid):
        if not skip_reshape:
            b, _, hd = q.shape
            q, k, v = (t.view(b, t.shape[1], heads, hd // heads).transpose(1, 2) for t in (q, k, v))
        s = self.settings
        return monarch_attention(
            q, k, v, (grid.frames, grid.rows, grid.cols), tile_frames=s.tile_frames, h_split=s.h_split,
            w_split=s.w_split, iterations=s.iterations, backend=s.backend,
            **({"exact_local": s.exact_local} if s.exact_local >= 0 else {}),
        )

    def _sampled_for_report(self, state: _CallState) -> bool:
        if state.step is None or not state.total_steps:
            return True
        every = max(1, math.ceil(state.total_steps / REPORT_SAMPLES_PER_RUN))
        return state.step % every == 0

    def report(self) -> None:
        text = self.stats.summary()
        log.info("[RTV] %s", text)
        self.send_text(text)

    def send_text(self, text: str) -> None:
        """The node's progress text in the ComfyUI frontend (nothing when run as a library)."""
        if self.node_id is None:
            return
        try:
            from server import PromptServer  # ComfyUI's server module; absent when run as a library
        except ImportError:
            return
        if getattr(PromptServer, "instance", None) is not None:
            PromptServer.instance.send_progress_text(text, self.node_id)


def apply_monarch_attention(model, settings: MonarchSettings, node_id: str | None = None):
    """A clone of ``model`` (a ComfyUI ModelPatcher of a Wan model) with Monarch self-attention."""
    diffusion_model = model.get_model_object("diffusion_model")
    if not hasattr(diffusion_model, "rope_encode") or not hasattr(diffusion_model, "blocks"):
        raise ValueError(
            f"[RTV] Monarch attention supports the Wan family (2.1/2.2, T2V, I2V, FLF2V, Fun-Camera, VACE); "
            f"this model is {type(diffusion_model).__name__}."
        )
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    patch = MonarchPatch(settings, previous_override=to.get("optimized_attention_override"), node_id=node_id)
    to["optimized_attention_override"] = patch.override
    mark_self_attention(m)
    fuse_wan_blocks(m)
    m.add_wrapper_with_key(patcher_extension.WrappersMP.DIFFUSION_MODEL, PATCH_KEY, patch.diffusion_model_wrapper)
    m.add_wrapper_with_key(patcher_extension.WrappersMP.OUTER_SAMPLE, PATCH_KEY, patch.outer_sample_wrapper)
    return m
