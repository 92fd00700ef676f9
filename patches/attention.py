"""Monarch attention patched into a loaded ComfyUI video model, through ComfyUI's own hooks.

Serves the families of ``video_families.py`` (Wan, HunyuanVideo, LTX-Video). Tokens that are not on
the video grid (HunyuanVideo's text in its joint attention, reference latents, LTXV guide frames) stay
exact: video queries attend them exactly beside the Monarch part (``kernels/monarch/extra_keys.py``),
and their own queries attend everything densely.

Four hooks on a model clone, all undone by using the unpatched MODEL:

- ``optimized_attention_override`` (transformer_options): sees every attention call that passes
  ``transformer_options``; it runs Monarch only for calls marked as video self-attention and hands
  everything else to the override that was already on the model (a Sage or Flash patch) or to
  ComfyUI's own backend.
- the self-attention markers of ``self_attention.py`` (the block index on each video self-attention
  call: shapes alone cannot tell self- from cross-attention); stock Wan self-attention forwards also
  get their q/k norm + RoPE fused there. HunyuanVideo marks its joint blocks itself.
- on Wan, the fused block steps of ``fused_block.py`` (modulation, LayerNorms and residuals in 3 passes
  instead of 10 kernels): not Monarch, but the same device time saved on every block of every call.
- a DIFFUSION_MODEL wrapper that records the token grid and the sampling step of each model call.
  An OUTER_SAMPLE wrapper resets and reports the statistics of one sampling run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import comfy.patcher_extension as patcher_extension
import torch

from ..kernels.monarch import autotune_cache, monarch_attention
from ..kernels.monarch.extra_keys import attention_with_biased_extras
from .cuda_graphs import EAGER, set_call_variant
from .video_families import SUPPORTED, video_family
from .wan import SUFFIX_REST, TokenGrid

MASK_DROPPED = -1e4
"""An additive mask value at or below this drops its key (ComfyUI masks padded text with -finfo.max)."""

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


def check_grid_fits(grid: TokenGrid, s: MonarchSettings, pixels_per_token: int = 16, frames_per_latent: int = 4) -> None:
    """Raise a ValueError that tells the user which setting or size to change."""
    for axis, size, split, pixels in (("rows", grid.rows, s.h_split, "height"),
                                      ("columns", grid.cols, s.w_split, "width")):
        if size % split:
            divisors = [d for d in range(1, size + 1) if size % d == 0]
            split_name = "h_split" if axis == "rows" else "w_split"
            raise ValueError(
                f"[RTV] Monarch attention: {split_name}={split} does not divide the {size} token {axis} of this "
                f"video. Use one of {divisors}, or change the {pixels} (tokens = pixels / {pixels_per_token})."
            )
    if grid.frames % s.tile_frames:
        raise ValueError(
            f"[RTV] Monarch attention: tile_frames={s.tile_frames} does not divide the {grid.frames} latent frames "
            f"of this call. Use a divisor of {grid.frames} or a frame count {frames_per_latent}*k*tile_frames+1."
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
    block: Callable[[dict], int | None]  # picklable: sequence parallel sends the state to its workers
    mask_readings: dict = field(default_factory=dict)
    """Per attention mask of this model call (every block passes the same one: a text padding mask, anchor
    memory's bias): its ``_MaskReading``. Reading a mask waits for the GPU, so once per call, not per block."""


@dataclass(frozen=True)
class _JointLayout:
    """A self-attention call over [prefix extras, video grid, suffix extras] tokens."""

    prefix: int
    grid: TokenGrid
    suffix: int
    kept_extras: torch.Tensor | None  # bool over the prefix + suffix keys, None: all kept
    extra_bias: float = 0.0  # added to every extra key's logit


@dataclass(frozen=True)
class _MaskReading:
    """What a call's attention mask asks of Monarch: drop some extra keys (a padding mask), or weight the
    keys of the grid's leading frames by a constant bias (anchor memory's context frames), which then become
    extra keys with that bias."""

    kept_extras: torch.Tensor | None = None
    leading_frames: int = 0
    bias: float = 0.0


def _leading_frame_bias(mask, tokens: int, grid: TokenGrid) -> tuple[int, float] | None:
    """(frames, bias) when an additive mask adds one finite bias to the keys of the grid's first whole frames
    (fewer than all) and nothing elsewhere, for every query alike; else None."""
    if mask.dtype == torch.bool or mask.shape[-1] != tokens or any(size != 1 for size in mask.shape[:-1]):
        return None
    row = mask.reshape(tokens).float()
    biased = row != 0
    count = int(biased.sum())
    bias = float(row[0])
    if not count or count % grid.frame_tokens or not math.isfinite(bias) or not bool((row[:count] == bias).all()):
        return None
    frames = count // grid.frame_tokens
    return (frames, bias) if frames < grid.frames else None


def _read_mask(mask, tokens: int, grid: TokenGrid) -> _MaskReading | bool:
    """The reading of ``mask`` for a call over [prefix extras, grid, suffix extras], False if Monarch cannot
    honour it (then the call stays dense)."""
    if mask is None:
        return _MaskReading()
    kept = _kept_keys(mask, tokens, slice(grid.prefix_tokens, grid.prefix_tokens + grid.tokens))
    if kept is not False:
        return _MaskReading(kept_extras=kept)
    leading = None if grid.has_extras else _leading_frame_bias(mask, tokens, grid)
    return False if leading is None else _MaskReading(leading_frames=leading[0], bias=leading[1])


def _kept_keys(mask, tokens: int, grid_slice: slice) -> torch.Tensor | None | bool:
    """Which extra keys an additive or boolean mask keeps (None: all). False when the mask does more than
    drop extra keys for every query alike (then the call stays dense)."""
    if mask is None:
        return None
    if mask.shape[-1] != tokens or any(size != 1 for size in mask.shape[:-1][-2:-1]):
        return False
    keep = mask if mask.dtype == torch.bool else mask > MASK_DROPPED
    if mask.dtype != torch.bool and bool(((mask != 0) & keep).any()):
        return False  # finite non-zero biases: not a padding mask
    keep = keep.reshape(-1, tokens)
    if not bool((keep == keep[:1]).all()) or not bool(keep[0, grid_slice].all()):
        return False
    extras = torch.cat([keep[0, : grid_slice.start], keep[0, grid_slice.stop :]])
    return None if bool(extras.all()) else extras


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
        dm = executor.class_obj
        family = video_family(dm)
        if family is None:  # another model behind the same patch: leave it alone
            return executor(*args, **kwargs)
        grid, to = family.call_grid(dm, args, kwargs)
        if grid is None:  # tokens this patch cannot place on a grid: every call stays dense
            self.stats.model_calls += 1
            return executor(*args, **kwargs)
        check_grid_fits(grid, self.settings, family.pixels_per_token(dm), family.frames_per_latent)
        # Finding the step compares device tensors (a device sync per model call, which stalls the
        # launch queue): only done when a setting depends on it.
        needs_step = self.settings.dense_first_steps or self.settings.dense_last_steps or self.settings.report_error
        step, total = _step_index(to) if needs_step else (None, None)
        state = _CallState(grid, step, total, family.block_reader(dm))
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
        block = None if state is None else state.block(to)
        if state is None or block is None or not self._wants_monarch(state, block):
            if block is not None:
                self.stats.dense += 1
            return self._dense(func, *args, **kwargs)
        q, k, v = args[:3]
        heads = kwargs.get("heads", args[3] if len(args) > 3 else None)
        skip_reshape = kwargs.get("skip_reshape", False)
        if heads is None:
            self.stats.dense += 1
            return self._dense(func, *args, **kwargs)
        if not skip_reshape:
            b, _, hd = q.shape
            q, k, v = (t.view(b, t.shape[1], heads, hd // heads).transpose(1, 2) for t in (q, k, v))
        mask = kwargs.get("mask")
        key_grid = None if state.grid.has_extras or mask is not None else self._key_grid(q, k, state.grid)
        joint = self._joint_layout(q, k, state, mask) if key_grid is None else None
        if key_grid is None and joint is None:
            self.stats.dense += 1
            return self._dense(func, *args, **kwargs)
        if joint is None:
            out = self._monarch(q, k, v, key_grid)
        else:
            dense_kwargs = {key: value for key, value in kwargs.items() if key != "heads"}
            out = self._joint(func, q, k, v, heads, joint, dense_kwargs)
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
    def _key_grid(q, k, grid: TokenGrid) -> TokenGrid | None:
        """Key-side grid of a call with only video tokens (``[B, H, N, D]``), or None when they are not
        whole frames of the video grid.

        Queries are the call's own frames; keys are the same frames (bidirectional) or, under a KV
        cache, cached frames followed by them (a chunk against cached keys).
        """
        nk, nq = k.shape[2], q.shape[2]
        if nq != grid.tokens or nk < nq or nk % grid.frame_tokens:
            return None
        return TokenGrid(nk // grid.frame_tokens, grid.rows, grid.cols)

    def _joint_layout(self, q, k, state: _CallState, mask) -> _JointLayout | None:
        """Where the grid sits in a self-attention over grid and extra tokens, or None (then dense)."""
        grid, tokens = state.grid, k.shape[2]
        suffix = tokens - grid.prefix_tokens - grid.tokens if grid.suffix_tokens == SUFFIX_REST else grid.suffix_tokens
        if q.shape[2] != tokens or suffix < 0 or grid.prefix_tokens + grid.tokens + suffix != tokens:
            return None
        # Read once per model call (the blocks share the mask); inference tensors carry no version counter.
        key = None if mask is None else (mask.data_ptr(), tuple(mask.shape),
                                         None if mask.is_inference() else mask._version)  # fmt: skip
        if key not in state.mask_readings:
            state.mask_readings[key] = _read_mask(
                mask, tokens, TokenGrid(grid.frames, grid.rows, grid.cols, grid.prefix_tokens, suffix))
        reading = state.mask_readings[key]
        if reading is False:
            return None
        frames = grid.frames - reading.leading_frames  # biased leading frames (anchor context) become extras
        if frames % self.settings.tile_frames:
            return None
        prefix = grid.prefix_tokens + reading.leading_frames * grid.frame_tokens
        return _JointLayout(prefix, TokenGrid(frames, grid.rows, grid.cols), suffix, reading.kept_extras, reading.bias)

    def _joint(self, func, q, k, v, heads: int, joint: _JointLayout, dense_kwargs: dict):
        """Video queries: Monarch over the grid with the extra keys exact; extra queries: dense."""
        lo, hi = joint.prefix, joint.prefix + joint.grid.tokens
        extra_k, extra_v = (torch.cat([t[:, :, :lo], t[:, :, hi:]], dim=2) for t in (k, v))
        if joint.kept_extras is not None:
            kept = joint.kept_extras.to(extra_k.device)
            extra_k, extra_v = extra_k[:, :, kept], extra_v[:, :, kept]
        has_extra = extra_k.shape[2] > 0
        video = self._monarch(q[:, :, lo:hi], k[:, :, lo:hi], v[:, :, lo:hi], joint.grid,
                              extra_k if has_extra else None, extra_v if has_extra else None,
                              joint.extra_bias if has_extra else 0.0)  # fmt: skip
        if lo == 0 and hi == q.shape[2]:
            return video
        extra_queries = torch.cat([q[:, :, :lo], q[:, :, hi:]], dim=2)
        if joint.extra_bias and joint.kept_extras is None:
            # anchor memory's context-frame queries: cuDNN takes no additive mask, masked SDPA is ~10x slower
            others = attention_with_biased_extras(extra_queries, (k[:, :, lo:hi], v[:, :, lo:hi]), (extra_k, extra_v),
                                                  joint.extra_bias)  # fmt: skip
        else:
            dense_kwargs = {**dense_kwargs, "skip_reshape": True, "skip_output_reshape": True}
            others = self._dense(func, extra_queries, k, v, heads, **dense_kwargs)
        return torch.cat([others[:, :, :lo].to(video.dtype), video, others[:, :, lo:].to(video.dtype)], dim=2)

    def _monarch(self, q, k, v, grid: TokenGrid, extra_k=None, extra_v=None, extra_bias: float = 0.0):
        s = self.settings
        return monarch_attention(
            q, k, v, (grid.frames, grid.rows, grid.cols), tile_frames=s.tile_frames, h_split=s.h_split,
            w_split=s.w_split, iterations=s.iterations, backend=s.backend, extra_k=extra_k, extra_v=extra_v,
            extra_bias=extra_bias,
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
    """A clone of ``model`` (a ComfyUI ModelPatcher of a Wan, HunyuanVideo or LTX-Video model) with
    Monarch self-attention."""
    diffusion_model = model.get_model_object("diffusion_model")
    family = video_family(diffusion_model)
    if family is None:
        raise ValueError(
            f"[RTV] Monarch attention supports {SUPPORTED}; this model is {type(diffusion_model).__name__}."
        )
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    patch = MonarchPatch(settings, previous_override=to.get("optimized_attention_override"), node_id=node_id)
    to["optimized_attention_override"] = patch.override
    family.install(m)
    m.add_wrapper_with_key(patcher_extension.WrappersMP.DIFFUSION_MODEL, PATCH_KEY, patch.diffusion_model_wrapper)
    m.add_wrapper_with_key(patcher_extension.WrappersMP.OUTER_SAMPLE, PATCH_KEY, patch.outer_sample_wrapper)
    return m
