"""Temporal consistency metrics of a video: flow-warp error per frame pair, a MAWE-style
motion-normalised warp error, seam jumps against the within-chunk baseline, and flicker.

Definitions (frames ``[N, C, H, W]`` in [0, 1]; errors on the 0..255 scale, as 8-bit video):

* **Warp error** of pair t: ``W_t = mean_p mean_c (I_{t+1}(p) - I_t(p + F(p)))^2`` with
  ``F = flow(I_{t+1}, I_t)`` (``kernels/flow.py``), averaged over the pixels whose match lies inside
  the frame. No occlusion or photometric mask is applied on purpose: a seam where the new frame
  does not match the old one must count, not be masked away as "unreliable".
* **Motion** of pair t: ``OF_t`` = mean flow magnitude (px). **Motion change** (stutter, a seam's
  positional jump): ``mean_p |F_t(p) - F_{t-1}(p)|`` (px; 0 for the first pair), the
  acceleration of the image motion; a constant pan scores ~0, a jump of d px scores ~d.
* **MAWE-style score**: ``mean_t W_t / (c * max(OF_t, MIN_MOTION_PX))`` with ``c = 9.5`` (StreamingT2V
  ``mawe.py``; research/algorithms.md section 3.5). Differences from the original: our weight-free
  flow instead of RAFT, backward warping with an inside-frame mask instead of rounding forward
  warping with a known-region mask, frames at their own size (or ``max_side``) instead of 720 x 720,
  and a motion floor so that a still video does not divide by zero. Compare scores only between
  videos measured the same way.
* **Flicker** of pair t: ``|mean luma(I_{t+1}) - mean luma(I_t)|`` (Rec. 601 luma, 0..255).
* **Seams** (videos made of chunks of ``chunk_frames`` overlapping by ``overlap_frames``, joined:
  chunk k starts at frame ``k * stride``): the seam window of chunk k is the pairs from
  ``(k * stride - 1, k * stride)`` to ``(s - 1, s)``, ``s = k * stride + overlap`` (the transition
  through the overlap, and the first frame only the new chunk shows). A seam's warp error is the
  worst pair in its window; the baseline is the median over pairs at least ``overlap`` frames away
  from every seam window; the ratio says how much worse the seam is than the chunks' inside.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .flow import LUMA_WEIGHTS, FlowParams
from .seams import flows_at, joined_seams
from .warp import backward_warp, inside_frame_mask

MAWE_C = 9.5
# Motion floor (px) of the MAWE-style normalisation: below it a pair counts as still.
MIN_MOTION_PX = 0.5
PIXEL_SCALE = 255.0
# Pairs measured per flow call: bounds memory for long videos (flow's working set is ~40 floats per
# pixel and pair), while batching keeps a GPU busy.
DEFAULT_PAIRS_PER_BATCH = 8
# Seam ratios divide by the within-chunk baseline, floored so that a perfectly still or perfectly
# steady video does not turn a negligible seam into a huge ratio: a warp error of 0.1 (0..255
# scale, squared), a motion change of 0.25 px, a luma change of 0.25 levels.
RATIO_FLOORS = {"warp_error": 0.1, "motion_change_px": 0.25, "flicker": 0.25}


@dataclass
class PairMeasures:
    """Per pair (t, t+1): warp error (0..255 scale, squared), mean motion and motion change (px),
    flicker (0..255)."""

    warp_error: list[float]
    motion_px: list[float]
    motion_change_px: list[float]
    flicker: list[float]


def mean_luma(frames: torch.Tensor) -> torch.Tensor:
    """``[N]`` mean luma on the 0..255 scale (Rec. 601 for RGB, channel mean otherwise)."""
    frames = frames.float()
    if frames.shape[1] == 3:
        weights = torch.tensor(LUMA_WEIGHTS, device=frames.device).view(1, 3, 1, 1)
        return (frames * weights).sum(dim=1).mean(dim=(1, 2)) * PIXEL_SCALE
    return frames.mean(dim=(1, 2, 3)) * PIXEL_SCALE


def pair_warp_error(earlier: torch.Tensor, later: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``[B]`` warp errors of pairs (earlier[i], later[i]) given ``flow = flow(later, earlier)``."""
    warped = backward_warp(earlier.float(), flow)
    squared = (later.float() - warped).square().mean(dim=1, keepdim=True) * PIXEL_SCALE**2
    inside = inside_frame_mask(flow).float()
    return (squared * inside).sum(dim=(1, 2, 3)) / inside.sum(dim=(1, 2, 3)).clamp_min(1.0)


def measure_pairs(
    frames: torch.Tensor,
    max_side: int = 0,
    pairs_per_batch: int = DEFAULT_PAIRS_PER_BATCH,
    device: torch.device | None = None,
    params: FlowParams | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PairMeasures:
    """Warp error, motion and flicker of every consecutive pair, ``pairs_per_batch`` pairs per flow
    call on ``device`` (default: the frames' device); ``progress(done, total)`` after each batch."""
    if frames.dim() != 4:
        raise ValueError(f"expected frames [N, C, H, W], got {tuple(frames.shape)}")
    count = frames.shape[0] - 1
    device = device or frames.device
    warp_error, motion, change = [], [], []
    luma = mean_luma(frames)
    flicker = (luma[1:] - luma[:-1]).abs().tolist()
    previous_flow = None
    for start in range(0, max(count, 0), max(1, pairs_per_batch)):
        stop = min(count, start + pairs_per_batch)
        earlier = frames[start:stop].to(device)
        later = frames[start + 1 : stop + 1].to(device)
        flow = flows_at(later, earlier, max_side, params)
        warp_error += pair_warp_error(earlier, later, flow).tolist()
        motion += flow.norm(dim=1).mean(dim=(1, 2)).tolist()
        preceding = flow[:-1] if previous_flow is None else torch.cat((previous_flow, flow[:-1]))
        steps = (flow[1:] if previous_flow is None else flow) - preceding
        change += ([0.0] if previous_flow is None else []) + steps.norm(dim=1).mean(dim=(1, 2)).tolist()
        previous_flow = flow[-1:]
        if progress is not None:
            progress(stop, count)
    return PairMeasures(warp_error, motion, change, flicker)


def mawe_score(measures: PairMeasures) -> float | None:
    """``mean_t W_t / (c * max(OF_t, MIN_MOTION_PX))``; None for a single frame."""
    if not measures.warp_error:
        return None
    terms = [w / (MAWE_C * max(m, MIN_MOTION_PX)) for w, m in zip(measures.warp_error, measures.motion_px)]
    return sum(terms) / len(terms)


def seam_windows(frames: int, chunk_frames: int, overlap_frames: int) -> list[tuple[int, int, int]]:
    """``(first_new_frame, first_pair, last_pair)`` of every seam of a joined video (see module doc)."""
    windows = []
    for first_new in joined_seams(frames, chunk_frames, overlap_frames):
        chunk_start = first_new - overlap_frames
        windows.append((first_new, max(chunk_start - 1, 0), first_new - 1))
    return windows


def _ratio(value: float, baseline: float | None, floor: float) -> float | None:
    if baseline is None:
        return None
    return value / max(baseline, floor)


def baseline_pairs(pairs: int, windows: list[tuple[int, int, int]], guard: int) -> list[int]:
    """Pairs that describe the inside of the chunks: at least ``guard`` pairs from every seam window
    (or, for short videos where none is, every pair outside the windows)."""
    near, in_window = set(), set()
    for _, first, last in windows:
        near.update(range(first - guard, last + guard + 1))
        in_window.update(range(first, last + 1))
    inside = [i for i in range(pairs) if i not in near]
    return inside or [i for i in range(pairs) if i not in in_window]


def summarize(
    measures: PairMeasures, chunk_frames: int = 0, overlap_frames: int = 0, digits: int = 4
) -> dict:
    """The JSON report: means, the MAWE-style score, per-seam figures against the within-chunk
    baseline (with ``chunk_frames``), and the per-pair lists."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    series = {
        "warp_error": measures.warp_error,
        "motion_change_px": measures.motion_change_px,
        "flicker": measures.flicker,
    }
    pairs = len(measures.warp_error)
    report = {"frames": pairs + 1, "pairs": pairs, "mawe": r(mawe_score(measures))}
    for name, values in (("motion_px", measures.motion_px), *series.items()):
        report[f"{name}_mean"] = r(statistics.fmean(values)) if values else None
        report[f"{name}_max"] = r(max(values)) if values else None
    report["units"] = (
        "warp_error: mean squared difference after flow warping, 0..255 scale; motion, motion_change: px "
        "(motion_change = how much the motion changes from one pair to the next: jumps, stutter); "
        "flicker: |change of mean luma|, 0..255; mawe: warp_error / (9.5 * max(motion, 0.5 px))"
    )
    seams = []
    if chunk_frames > 0 and pairs > 0:
        windows = seam_windows(pairs + 1, chunk_frames, overlap_frames)
        inside = baseline_pairs(pairs, windows, guard=max(overlap_frames, 1))
        baselines = {
            name: statistics.median(values[i] for i in inside) if inside else None
            for name, values in series.items()
        }
        for first_new, first, last in windows:
            span = range(first, min(last, pairs - 1) + 1)
            seam = {"frame": first_new, "pairs": [first, span[-1]]}
            for name, values in series.items():
                worst = max(span, key=lambda i: values[i])
                seam[name] = r(values[worst])
                seam[f"{name}_ratio"] = r(_ratio(values[worst], baselines[name], RATIO_FLOORS[name]))
            seams.append(seam)
        for name in series:
            report[f"within_chunk_{name}"] = r(baselines[name])
            ratios = [seam[f"{name}_ratio"] for seam in seams if seam[f"{name}_ratio"] is not None]
            report[f"seam_{name}_ratio_max"] = max(ratios) if ratios else None
    report["seams"] = seams
    for name, values in (("motion_px", measures.motion_px), *series.items()):
        report[name] = [r(x) for x in values]
    return report
