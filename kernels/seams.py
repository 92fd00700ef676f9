"""Seam alignment between video chunks: eased blending weights, flow-aligned overlap morphing with a
crossfade fallback, jump redistribution inside a joined video, and colour statistics transfer that
fades out over the frames after a seam.

Frames are ``[N, C, H, W]`` float tensors in [0, 1] (C = 3 is RGB). Flow convention as in
``kernels/warp.py``: ``flow(a, b)`` is ``F`` with ``a(p) ~ b(p + F(p))``.

Two situations (research/comfyui-0.3.75.md section 7.4; KJNodes ``ImageBatchExtendWithOverlap`` is
the plain-crossfade baseline):

* **Two clips that overlap** (``join_clips``): the last O frames of the previous clip and the first
  O frames of the next one show the same moments, rendered twice and slightly differently (shifted,
  recoloured). The next clip is colour-matched to the previous one over the overlap; then each
  overlap pair (p_j, n_j) is *morphed* at an eased weight w_j rising from ~0 to ~1: both frames are
  warped to the geometry that lies the fraction w_j of the way from p_j to n_j along their optical
  flow, then blended. A misalignment is thus spread over the overlap as a little extra motion, with
  no ghosting; where the flow is unreliable (occlusions, content the two renditions disagree on) the
  result falls back to the plain crossfade ``(1 - w) p + w n``. After the overlap the colour
  correction fades out over ``correction_frames`` frames, so no frame pops.
* **A joined video** (``align_joined_seam``; e.g. the streaming sampler's output, where each
  chunk's overlap frames appear once): at the first frame s of a new chunk there is no second
  rendition to morph with, so the seam's unexplained motion ("jump") is measured as the flow from
  frame s back to s-1 minus the motion expected from the neighbouring pairs, and the new chunk is
  pulled back onto the previous geometry and colours at s and released over the next
  ``correction_frames`` frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .flow import FlowParams, optical_flow
from .interpolate import MIN_VALID_FRACTION, push_pull_fill, splat_intermediate_flow, visibility_weight
from .warp import backward_warp, fb_consistency, flow_validity, inside_frame_mask, photometric_consistency

METHODS = ("flow_blend", "crossfade", "none")
COLOR_CORRECTIONS = ("none", "mean_std", "lab")
CURVES = ("ease_in_out", "linear")
# Colour transfer scales each channel's spread by std_target / std_source; a frame that is nearly flat
# (a fade to black) must not have its noise amplified without bound, nor be flattened completely.
STD_RATIO_RANGE = (0.5, 2.0)
STD_FLOOR = 1e-4
# Frames on each side of a seam whose statistics describe "before" and "after" in a joined video.
STAT_FRAMES = 2
# The jump of a joined seam is a drift of one rendition against the other: smooth across the frame.
# It is low-passed to a grid of about this many cells along the longer side.
JUMP_FIELD_CELLS = 8
# Where the morph is unreliable on both sides, the crossfade takes over; the reliability map is
# softened by a box filter of this size (px at the flow's resolution) so the switch leaves no edge.
RELIABILITY_SOFTEN_PX = 5
# Resampling of the morph: bicubic keeps the texture as sharp as the unwarped frames around it
# (bilinear visibly softens at half-pixel offsets, which then flickers against the sharp frames).
WARP_MODE = "bicubic"
# A joined seam whose jump is below this (mean px) is left in place: resampling would cost more
# sharpness than it buys smoothness.
MIN_JUMP_PX = 0.5
# With the colour correction held (correction_frames = HOLD), a positional jump still fades out,
# over this many frames: holding it would carry an ever-staler border strip along.
HOLD_JUMP_FRAMES = 12


# --------------------------------------------------------------------------------------------------
# Weights and curves
# --------------------------------------------------------------------------------------------------


def ease_in_out(t: torch.Tensor) -> torch.Tensor:
    """Smoothstep ``3 t^2 - 2 t^3``: zero slope at both ends, so a transition starts and stops gently."""
    t = t.clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def apply_curve(t: torch.Tensor, curve: str) -> torch.Tensor:
    if curve == "ease_in_out":
        return ease_in_out(t)
    if curve == "linear":
        return t.clamp(0.0, 1.0)
    raise ValueError(f"[RTV] curve must be one of {CURVES}, not {curve!r}")


def blend_weights(count: int, curve: str = "ease_in_out") -> torch.Tensor:
    """Weights of the next clip over an overlap of ``count`` frames: ``curve((j + 1) / (count + 1))``,
    strictly between 0 and 1 (the frame before the overlap is all previous clip, the one after all
    next clip), the same spacing as KJNodes' ``linear_blend`` / ``ease_in_out``."""
    t = torch.arange(1, count + 1, dtype=torch.float32) / (count + 1)
    return apply_curve(t, curve)


def release_weights(count: int, curve: str = "ease_in_out") -> torch.Tensor:
    """How much of a correction is left on each of the ``count`` frames after a seam: from just
    under 1 down to just above 0 (``1 - blend_weights``)."""
    return 1.0 - blend_weights(count, curve)


HOLD = -1  # correction_frames value: keep the correction to the end of the chunk instead of fading it


def correction_amounts(frames: int, correction_frames: int, curve: str) -> torch.Tensor:
    """``[frames]`` weights of a seam's correction on the frames after it: ``release_weights`` over
    ``correction_frames`` frames then 0, or all 1 with ``HOLD``."""
    if correction_frames == HOLD:
        return torch.ones(frames)
    amounts = torch.zeros(frames)
    count = min(frames, correction_frames)
    amounts[:count] = release_weights(correction_frames, curve)[:count]
    return amounts


# --------------------------------------------------------------------------------------------------
# Colour: sRGB <-> CIE Lab (D65) and statistics transfer
# --------------------------------------------------------------------------------------------------

_SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_D65_WHITE = (0.95047, 1.0, 1.08883)
_LAB_DELTA = 6.0 / 29.0


def _mix_channels(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(image), image)


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` sRGB in [0, 1] -> CIE Lab (L in 0..100, a/b about -128..127), D65 white."""
    rgb = rgb.float().clamp(0.0, 1.0)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = _mix_channels(linear, torch.tensor(_SRGB_TO_XYZ))
    xyz = xyz / torch.tensor(_D65_WHITE, device=rgb.device).view(1, 3, 1, 1)
    f = torch.where(
        xyz > _LAB_DELTA**3, xyz.clamp_min(1e-12) ** (1.0 / 3.0), xyz / (3 * _LAB_DELTA**2) + 4.0 / 29.0
    )
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)


def lab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of ``srgb_to_lab``; out-of-gamut colours are clamped to [0, 1]."""
    fy = (lab[:, 0:1] + 16.0) / 116.0
    f = torch.cat((fy + lab[:, 1:2] / 500.0, fy, fy - lab[:, 2:3] / 200.0), dim=1)
    xyz = torch.where(f > _LAB_DELTA, f**3, 3 * _LAB_DELTA**2 * (f - 4.0 / 29.0))
    xyz = xyz * torch.tensor(_D65_WHITE, device=lab.device).view(1, 3, 1, 1)
    linear = _mix_channels(xyz, torch.linalg.inv(torch.tensor(_SRGB_TO_XYZ, dtype=torch.float64)).float())
    linear = linear.clamp(0.0, 1.0)
    srgb = torch.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1.0 / 2.4) - 0.055)
    return srgb.clamp(0.0, 1.0)


def _to_space(frames: torch.Tensor, space: str) -> torch.Tensor:
    if space == "lab" and frames.shape[1] == 3:
        return srgb_to_lab(frames)
    return frames.float()


def _from_space(values: torch.Tensor, space: str, channels: int) -> torch.Tensor:
    if space == "lab" and channels == 3:
        return lab_to_srgb(values)
    return values.clamp(0.0, 1.0)


@dataclass(frozen=True)
class ColorStats:
    """Per-channel mean and standard deviation ``[C]`` of some frames, in ``space``."""

    mean: torch.Tensor
    std: torch.Tensor
    space: str


def color_statistics(frames: torch.Tensor, space: str) -> ColorStats:
    """Statistics over all pixels of all ``frames [N, C, H, W]``; ``space`` "mean_std" (the frames'
    own channels) or "lab" (CIE Lab, for RGB)."""
    values = _to_space(frames, space).transpose(0, 1).flatten(1)
    return ColorStats(values.mean(dim=1), values.std(dim=1).clamp_min(STD_FLOOR), space)


def transfer_color(
    frames: torch.Tensor, source: ColorStats, target: ColorStats, amounts: torch.Tensor
) -> torch.Tensor:
    """Move each frame's colours by the affine map that takes ``source`` statistics to ``target``
    (Reinhard et al. 2001: per channel ``(x - mean_s) * std_t / std_s + mean_t``), applied to frame i
    with weight ``amounts[i]`` in [0, 1]. Frames with amount 0 come back unchanged (bit for bit)."""
    if source.space != target.space:
        raise ValueError("source and target colour statistics must be in the same space")
    amounts = amounts.to(device=frames.device, dtype=torch.float32)
    if amounts.numel() != frames.shape[0]:
        raise ValueError(f"need one amount per frame, got {amounts.numel()} for {frames.shape[0]} frames")
    if not bool((amounts > 0).any()):
        return frames
    space, channels = source.space, frames.shape[1]
    values = _to_space(frames, space)
    view = (1, -1, 1, 1)
    ratio = (target.std / source.std).clamp(*STD_RATIO_RANGE).to(values.device).view(view)
    mapped = (values - source.mean.to(values.device).view(view)) * ratio + target.mean.to(values.device).view(
        view
    )
    mixed = torch.lerp(values, mapped, amounts.view(-1, 1, 1, 1))
    corrected = _from_space(mixed, space, channels).to(frames.dtype)
    untouched = (amounts <= 0).view(-1, 1, 1, 1)
    return torch.where(untouched, frames, corrected)


# --------------------------------------------------------------------------------------------------
# Flow at a working resolution
# --------------------------------------------------------------------------------------------------


def working_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """Size at which to estimate flow: the frame scaled so its longer side is at most ``max_side``
    (0 = full size), never below 16 px on the shorter side."""
    if max_side <= 0 or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(round(height * scale), min(16, height)), max(round(width * scale), min(16, width))


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames.float(), size=size, mode="area")


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A flow field at another resolution: positions resampled, vectors rescaled per axis."""
    height, width = flow.shape[-2:]
    if (height, width) == tuple(size):
        return flow
    resized = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / width, size[0] / height], device=flow.device).view(1, 2, 1, 1)
    return resized * scale


def flows_at(
    a: torch.Tensor, b: torch.Tensor, max_side: int = 0, params: FlowParams | None = None
) -> torch.Tensor:
    """``optical_flow(a, b)`` estimated at ``working_size`` and returned at full size."""
    size = working_size(*a.shape[-2:], max_side)
    flow = optical_flow(resize_frames(a, size), resize_frames(b, size), params)
    return resize_flow(flow, tuple(a.shape[-2:]))


# --------------------------------------------------------------------------------------------------
# Morphing two renditions of the same moment
# --------------------------------------------------------------------------------------------------


def extend_flow_from_inside(flow_ab: torch.Tensor, flow_ba: torch.Tensor) -> torch.Tensor:
    """``flow_ab`` with the flow of pixels whose match lies outside the frame, or fails the
    forward-backward check, replaced by the flow of the consistent pixels around them (push-pull).
    Content entering or leaving at a border has nothing to match, so its estimate is an
    extrapolation from padding; the smooth continuation of the consistent motion places it better."""
    keep = fb_consistency(flow_ab, flow_ba)
    if bool(keep.all()) or not bool(keep.any()):
        return flow_ab
    return push_pull_fill(flow_ab, keep)


def _reliable_or_outside(
    a: torch.Tensor, b: torch.Tensor, flow_ab: torch.Tensor, flow_ba: torch.Tensor
) -> torch.Tensor:
    """Pixels of ``a`` whose flow is reliable, counting content that leaves the frame as reliable:
    its flow is the extension of the inside motion (``extend_flow_from_inside``), and neither test
    can see it (the other frame has nothing there)."""
    inside = inside_frame_mask(flow_ab)
    consistent = fb_consistency(flow_ab, flow_ba, require_inside=False)
    return (consistent & photometric_consistency(a, b, flow_ab)) | ~inside


def morph_pairs(
    a: torch.Tensor,
    b: torch.Tensor,
    weights: torch.Tensor,
    flow_ab: torch.Tensor,
    flow_ba: torch.Tensor,
) -> torch.Tensor:
    """Blend ``a[i]`` and ``b[i]`` (``[N, C, H, W]``, two renditions of one moment) at ``weights[i]``
    with their geometry aligned: the frame that lies the fraction w of the way from a to b.

    The geometry at w comes from forward-splatting each side's flow (``kernels/interpolate``: a
    pixel seen in both frames wins a target over an occluded one), both frames are warped to it and
    blended with visibility weights ``(1 - w) V_a`` and ``w V_b``. Where neither side's flow is
    reliable, and for a pair whose flow is trustworthy on less than ``MIN_VALID_FRACTION`` of either
    frame (the two renditions disagree), the result is the plain crossfade ``(1 - w) a + w b``.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"frames must be equal-shaped [N, C, H, W], got {tuple(a.shape)}, {tuple(b.shape)}")
    w = weights.to(device=a.device, dtype=torch.float32).reshape(-1)
    if w.numel() != a.shape[0]:
        raise ValueError(f"need one weight per pair, got {w.numel()} for {a.shape[0]} pairs")
    a32, b32 = a.float(), b.float()
    flow_ab, flow_ba = extend_flow_from_inside(flow_ab, flow_ba), extend_flow_from_inside(flow_ba, flow_ab)
    valid_a = flow_validity(a32, b32, flow_ab, flow_ba)
    valid_b = flow_validity(b32, a32, flow_ba, flow_ab)
    flow_t_a, visible_a, covered_a = splat_intermediate_flow(flow_ab, valid_a, w)
    flow_t_b, visible_b, covered_b = splat_intermediate_flow(flow_ba, valid_b, 1.0 - w)
    from_a = backward_warp(a32, push_pull_fill(flow_t_a, covered_a), mode=WARP_MODE).clamp(0.0, 1.0)
    from_b = backward_warp(b32, push_pull_fill(flow_t_b, covered_b), mode=WARP_MODE).clamp(0.0, 1.0)
    w_col = w.view(-1, 1, 1, 1)
    weight_a = (1.0 - w_col) * visibility_weight(visible_a, covered_a)
    weight_b = w_col * visibility_weight(visible_b, covered_b)
    morphed = (weight_a * from_a + weight_b * from_b) / (weight_a + weight_b)

    # Reliability for the crossfade fallback ignores the inside-frame test: content entering or
    # leaving at the border has one valid side only, which the visibility weights already handle.
    _, reliable_a, _ = splat_intermediate_flow(flow_ab, _reliable_or_outside(a32, b32, flow_ab, flow_ba), w)
    _, reliable_b, _ = splat_intermediate_flow(
        flow_ba, _reliable_or_outside(b32, a32, flow_ba, flow_ab), 1.0 - w
    )
    crossfade = (1.0 - w_col) * a32 + w_col * b32
    reliable = (reliable_a | reliable_b).float()
    reliable = F.avg_pool2d(
        reliable, RELIABILITY_SOFTEN_PX, stride=1, padding=RELIABILITY_SOFTEN_PX // 2, count_include_pad=False
    )
    valid_fraction = torch.minimum(valid_a.float().mean(dim=(1, 2, 3)), valid_b.float().mean(dim=(1, 2, 3)))
    reliable = torch.where((valid_fraction < MIN_VALID_FRACTION).view(-1, 1, 1, 1), 0.0, reliable)
    return (reliable * morphed + (1.0 - reliable) * crossfade).to(a.dtype)


# --------------------------------------------------------------------------------------------------
# Settings and reports
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeamSettings:
    """How seams are aligned. ``strength`` scales the geometric alignment (the flows) and the colour
    correction: 0 leaves a plain crossfade (two clips) or the input (joined video)."""

    method: str = "flow_blend"
    color_correction: str = "mean_std"
    strength: float = 1.0
    correction_frames: int = 12
    curve: str = "ease_in_out"
    flow_max_side: int = 0
    flow_params: FlowParams | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"[RTV] method must be one of {METHODS}, not {self.method!r}")
        if self.color_correction not in COLOR_CORRECTIONS:
            raise ValueError(
                f"[RTV] color_correction must be one of {COLOR_CORRECTIONS}, not {self.color_correction!r}"
            )
        if self.curve not in CURVES:
            raise ValueError(f"[RTV] curve must be one of {CURVES}, not {self.curve!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"[RTV] strength must lie in [0, 1], got {self.strength}")
        if self.correction_frames < HOLD:
            raise ValueError(
                f"[RTV] correction_frames must be >= 0 (or {HOLD}: keep the correction), got {self.correction_frames}"
            )

    def corrected_span(self, available: int) -> int:
        """How many of ``available`` frames after a seam the correction touches."""
        return available if self.correction_frames == HOLD else min(available, self.correction_frames)


@dataclass
class SeamReport:
    """What was done at one seam (frame = first frame of the new chunk/clip in the output)."""

    frame: int
    overlap: int
    flow_reliable_fraction: float | None = None
    jump_px: float | None = None
    color_shift: list[float] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        out = {"frame": self.frame, "overlap": self.overlap}
        if self.flow_reliable_fraction is not None:
            out["flow_reliable_fraction"] = round(self.flow_reliable_fraction, 4)
        if self.jump_px is not None:
            out["jump_px"] = round(self.jump_px, 3)
        if self.color_shift:
            out["color_shift"] = [round(v, 4) for v in self.color_shift]
        if self.note:
            out["note"] = self.note
        return out


def _color_plan(
    reference: torch.Tensor, corrected: torch.Tensor, settings: SeamSettings
) -> tuple[ColorStats, ColorStats] | None:
    if settings.color_correction == "none" or settings.strength <= 0:
        return None
    return color_statistics(corrected, settings.color_correction), color_statistics(
        reference, settings.color_correction
    )


# --------------------------------------------------------------------------------------------------
# Two clips with an overlap
# --------------------------------------------------------------------------------------------------


def seam_transition(
    tail: torch.Tensor,
    following: torch.Tensor,
    settings: SeamSettings,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor, SeamReport]:
    """The seam between a clip ending in ``tail`` (its last O frames) and ``following`` (whose first O
    frames show the same moments). Returns ``(overlap, corrected, report)``: the O blended overlap
    frames and ``following[O:O + correction_frames]`` with the colour correction released, both on
    ``tail``'s device; the rest of ``following`` is unchanged. ``report.frame`` is relative to the
    start of the overlap."""
    overlap = tail.shape[0]
    device = device or tail.device
    report = SeamReport(frame=overlap, overlap=overlap)
    span = overlap + settings.corrected_span(following.shape[0] - overlap)
    head = following[:span].to(device)
    tail = tail.to(device)
    colors = _color_plan(tail, head[:overlap], settings)
    if colors is not None:
        amounts = torch.ones(span)
        amounts[overlap:] = correction_amounts(span - overlap, settings.correction_frames, settings.curve)
        head = transfer_color(head, *colors, amounts * settings.strength)
        report.color_shift = (colors[1].mean - colors[0].mean).tolist()

    weights = blend_weights(overlap, settings.curve).to(device)
    if settings.method == "none":
        blended = head[:overlap]
    elif settings.method == "crossfade" or settings.strength <= 0:
        w = weights.view(-1, 1, 1, 1)
        blended = ((1.0 - w) * tail.float() + w * head[:overlap].float()).to(tail.dtype)
    else:
        flows = flows_at(
            torch.cat((tail, head[:overlap])),
            torch.cat((head[:overlap], tail)),
            settings.flow_max_side,
            settings.flow_params,
        )
        flow_ab, flow_ba = flows[:overlap] * settings.strength, flows[overlap:] * settings.strength
        report.flow_reliable_fraction = float(fb_consistency(flow_ab, flow_ba).float().mean())
        report.jump_px = float(flow_ab.norm(dim=1).mean())
        blended = morph_pairs(tail, head[:overlap], weights, flow_ab, flow_ba)
    out_device = following.device
    return blended.to(out_device), head[overlap:].to(out_device), report


def join_clips(
    previous: torch.Tensor,
    following: torch.Tensor,
    overlap: int,
    settings: SeamSettings,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, SeamReport]:
    """Join two clips ``[N, C, H, W]`` and ``[M, C, H, W]`` whose last / first ``overlap`` frames show
    the same moments. Returns ``N + M - overlap`` frames (on ``previous``'s device) and a report.

    Output: previous[:N-O], the O blended overlap frames, following[O:], with ``following``
    colour-matched to ``previous`` over the overlap and the correction released over the next
    ``correction_frames`` frames. Methods: ``flow_blend`` (``morph_pairs``), ``crossfade``, ``none``
    (a cut: the overlap is taken from the following clip).
    """
    _check_clips(previous, following, overlap)
    blended, corrected, report = seam_transition(previous[-overlap:], following, settings, device)
    report.frame = previous.shape[0]
    rest = following[overlap + corrected.shape[0] :]
    pieces = [previous[:-overlap], blended, corrected, rest]
    return torch.cat([p.to(previous.device, previous.dtype) for p in pieces if p.shape[0] > 0]), report


def _check_clips(previous: torch.Tensor, following: torch.Tensor, overlap: int) -> None:
    if previous.shape[1:] != following.shape[1:]:
        raise ValueError(
            f"[RTV] both clips must have the same frame size and channels, got {tuple(previous.shape[1:])} "
            f"and {tuple(following.shape[1:])}: resize one of them first."
        )
    if not 1 <= overlap <= min(previous.shape[0], following.shape[0]):
        raise ValueError(
            f"[RTV] overlap_frames ({overlap}) must be between 1 and the length of the shorter clip "
            f"({min(previous.shape[0], following.shape[0])} frames)."
        )


# --------------------------------------------------------------------------------------------------
# A seam inside a joined video
# --------------------------------------------------------------------------------------------------


def smooth_field(field_: torch.Tensor, cells: int = JUMP_FIELD_CELLS) -> torch.Tensor:
    """Low-pass a ``[N, 2, H, W]`` field to about ``cells`` cells along the longer side (area
    average, then bilinear back up)."""
    height, width = field_.shape[-2:]
    step = max(1, math.ceil(max(height, width) / cells))
    coarse = F.avg_pool2d(field_, step, stride=step, ceil_mode=True, count_include_pad=False)
    return F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class SeamJump:
    """Motion at a joined seam, in the new chunk's first frame (``[1, 2, H, W]`` px each).

    ``jump``: the unexplained displacement R; ``expected``: the per-frame motion E expected there
    (``I_t(p) ~ I_{t-1}(p + E(p))``); ``reliable_fraction``: where the flow across the seam passed
    the forward-backward check."""

    jump: torch.Tensor
    expected: torch.Tensor
    reliable_fraction: float


def seam_jump(
    before: torch.Tensor, after: torch.Tensor, max_side: int = 0, params: FlowParams | None = None
) -> SeamJump:
    """The unexplained displacement at a seam between ``before`` (the previous chunk's last 1-2
    frames) and ``after`` (the new chunk's first 1-2 frames), ``[k, C, H, W]`` each.

    ``F = flow(after[0], before[-1])`` is the motion across the seam; the motion expected there is
    the mean of ``flow(after[1], after[0])`` and ``flow(before[-1], before[-2])`` (constant velocity,
    whichever exist). The jump ``R = F - expected`` is kept where ``F`` passes the forward-backward
    check, filled in elsewhere, and low-passed: with it, ``after[0](p - R(p))`` continues
    ``before[-1]`` at the expected velocity. R is zero when less than ``MIN_VALID_FRACTION`` is
    reliable (a cut, not a jump).
    """
    a = [after[:1], before[-1:]]
    b = [before[-1:], after[:1]]
    if after.shape[0] > 1:
        a.append(after[1:2])
        b.append(after[:1])
    if before.shape[0] > 1:
        a.append(before[-1:])
        b.append(before[-2:-1])
    flows = flows_at(torch.cat(a), torch.cat(b), max_side, params)
    across, back = flows[0:1], flows[1:2]
    expected = flows[2:].mean(dim=0, keepdim=True) if flows.shape[0] > 2 else torch.zeros_like(across)
    valid = fb_consistency(across, back)
    fraction = float(valid.float().mean())
    if fraction < MIN_VALID_FRACTION:
        return SeamJump(torch.zeros_like(across), smooth_field(expected), fraction)
    jump = push_pull_fill(across - expected, valid)
    return SeamJump(smooth_field(jump), smooth_field(expected), fraction)


def pull_back_jump(
    frames: torch.Tensor, last_before: torch.Tensor, motion: SeamJump, release: torch.Tensor
) -> torch.Tensor:
    """Warp the new chunk's first frames ``[n, C, H, W]`` back by ``release[j]`` of the seam's jump:
    frame j becomes ``I_{s+j}(p - release_j R(p))``. Where that position lies outside the frame
    (the border strip the jump uncovers), the content is taken from ``last_before`` (frame s-1)
    carried forward by the expected motion, ``I_{s-1}(p + (j + 1) E + (1 - release_j) R)``, so the
    strip continues the scene instead of smearing the border."""
    jump, expected = motion.jump, motion.expected
    rel = release.view(-1, 1, 1, 1).to(frames.device)
    steps = torch.arange(1, frames.shape[0] + 1, device=frames.device, dtype=torch.float32).view(-1, 1, 1, 1)
    shift = -rel * jump
    pulled = backward_warp(frames.float(), shift, mode=WARP_MODE)
    carried = backward_warp(
        last_before.float().expand(frames.shape[0], -1, -1, -1),
        steps * expected + (1.0 - rel) * jump,
        mode=WARP_MODE,
    )
    inside = inside_frame_mask(shift)
    return torch.where(inside, pulled, carried).clamp(0.0, 1.0).to(frames.dtype)


def align_joined_seam(
    video: torch.Tensor,
    seam: int,
    settings: SeamSettings,
    end: int | None = None,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, SeamReport]:
    """Return the frames ``video[seam:end]`` corrected so that they continue ``video[:seam]``.

    ``seam`` is the first frame of the new chunk; ``end`` (default ``seam + correction_frames``,
    at most the video's length) bounds the frames that may change. Colour correction maps the new
    chunk to the previous frames' statistics and, with ``flow_blend``, the new chunk is pulled back
    by the seam's jump (``pull_back_jump``); both with weight ``strength * release_weights``,
    ~1 at the seam and 0 after ``correction_frames`` frames. Crossfade has no second rendition to
    fade to in a joined video, so it corrects colour only, like ``none``.
    """
    length = video.shape[0]
    if not 1 <= seam < length:
        raise ValueError(f"seam frame {seam} is outside the video (1..{length - 1})")
    device = device or video.device
    count = settings.corrected_span((length if end is None else min(end, length)) - seam)
    report = SeamReport(frame=seam, overlap=0)
    if count <= 0 or settings.strength <= 0:
        return video[seam : seam + max(count, 0)], report
    release = (
        correction_amounts(count, settings.correction_frames, settings.curve).to(device) * settings.strength
    )
    frames = video[seam : seam + count].to(device, copy=True)
    before = video[max(0, seam - STAT_FRAMES) : seam].to(device)
    after = video[seam : min(length, seam + STAT_FRAMES)].to(device)

    colors = _color_plan(before, after, settings)
    if colors is not None:
        frames = transfer_color(frames, *colors, release)
        report.color_shift = (colors[1].mean - colors[0].mean).tolist()
    if settings.method == "flow_blend":
        motion = seam_jump(before, after, settings.flow_max_side, settings.flow_params)
        report.flow_reliable_fraction = motion.reliable_fraction
        report.jump_px = float(motion.jump.norm(dim=1).mean())
        if report.jump_px >= MIN_JUMP_PX:
            frames_released = (
                HOLD_JUMP_FRAMES if settings.correction_frames == HOLD else settings.correction_frames
            )
            jump_release = (
                correction_amounts(count, frames_released, settings.curve).to(device) * settings.strength
            )
            moved = int((jump_release > 0).sum())
            frames[:moved] = pull_back_jump(frames[:moved], before[-1:], motion, jump_release[:moved])
        if motion.reliable_fraction < MIN_VALID_FRACTION:
            report.note = "flow unreliable across the seam (a cut?): colour only"
    return frames.to(video.device), report


# --------------------------------------------------------------------------------------------------
# Whole videos
# --------------------------------------------------------------------------------------------------


def joined_seams(length: int, chunk_frames: int, overlap_frames: int) -> list[int]:
    """First frames of chunks 1, 2, ... in a joined video: chunk k spans frames
    ``k * (chunk - overlap) .. + chunk - 1`` and its first new frame is ``k * stride + overlap``."""
    _check_chunking(chunk_frames, overlap_frames)
    stride = chunk_frames - overlap_frames
    return list(range(chunk_frames, length, stride))


def _check_chunking(chunk_frames: int, overlap_frames: int) -> None:
    if chunk_frames < 2 or not 0 <= overlap_frames < chunk_frames:
        raise ValueError(
            f"[RTV] need chunk_frames >= 2 and 0 <= overlap_frames < chunk_frames, got {chunk_frames} and "
            f"{overlap_frames}: use the chunk and overlap lengths the video was generated with."
        )


Progress = Callable[[int, int], None]


def align_joined_video(
    video: torch.Tensor,
    chunk_frames: int,
    overlap_frames: int,
    settings: SeamSettings,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, list[SeamReport]]:
    """Align every seam of a joined video (``joined_seams``), one after the other, each seam's
    correction ending before the next seam. Returns a new tensor; the input is not modified."""
    seams = joined_seams(video.shape[0], chunk_frames, overlap_frames)
    out = video.clone() if seams else video
    reports = []
    for index, seam in enumerate(seams):
        following = seams[index + 1] if index + 1 < len(seams) else video.shape[0]
        frames, report = align_joined_seam(out, seam, settings, end=following, device=device)
        out[seam : seam + frames.shape[0]] = frames
        reports.append(report)
        if progress is not None:
            progress(index + 1, len(seams))
    return out, reports


def split_back_to_back(video: torch.Tensor, chunk_frames: int, overlap_frames: int) -> list[torch.Tensor]:
    """Chunks laid end to end (each ``chunk_frames`` long, the overlap repeated at the start of
    every chunk after the first; the last chunk may be shorter but must extend past the overlap)."""
    _check_chunking(chunk_frames, overlap_frames)
    chunks = list(torch.split(video, chunk_frames))
    if len(chunks) > 1 and chunks[-1].shape[0] <= overlap_frames:
        raise ValueError(
            f"[RTV] {video.shape[0]} frames do not split into chunks of {chunk_frames}: the last chunk has "
            f"{chunks[-1].shape[0]} frames, not more than the overlap ({overlap_frames}). Check chunk_frames."
        )
    return chunks


def join_back_to_back(
    video: torch.Tensor,
    chunk_frames: int,
    overlap_frames: int,
    settings: SeamSettings,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, list[SeamReport]]:
    """Join chunks laid end to end (``split_back_to_back``) into one video, seam by seam: each
    chunk's first ``overlap_frames`` are merged with the previous chunk's last ones (``join_clips``)."""
    chunks = split_back_to_back(video, chunk_frames, overlap_frames)
    if overlap_frames == 0 or len(chunks) == 1:
        return video, []
    done, done_frames, reports = [], 0, []
    current = chunks[0]
    for index, chunk in enumerate(chunks[1:]):
        blended, corrected, report = seam_transition(current[-overlap_frames:], chunk, settings, device)
        done.append(current[:-overlap_frames])
        done_frames += current.shape[0] - overlap_frames
        report.frame = done_frames + overlap_frames
        reports.append(report)
        current = torch.cat(
            [p for p in (blended, corrected, chunk[overlap_frames + corrected.shape[0] :]) if p.shape[0]]
        )
        if progress is not None:
            progress(index + 1, len(chunks) - 1)
    return torch.cat([*done, current]), reports
