"""Section 3 of bench/reference_quality.py: the streaming sampler on the reference model.

A video longer than one chunk (chunks of the training clip length, overlapping by 4m+1 frames,
pinned latents: sampling/streaming.py) is generated per prompt, then measured as it comes out and
after the seam alignment of RTV_TemporalAlign (kernels/seams.align_joined_video, the node's
"joined" layout with its default settings):

- seams: kernels/temporal_metrics (warp error, motion change and flicker at each seam, as ratios to
  the same measure inside the chunks; the MAWE-style score of the whole video);
- drift: how far each chunk's new frames move from chunk 0 in colour (distance of the mean CIE Lab
  colour, ratio of the lightness spread), and whether the tracker still finds the prompt's object in
  each chunk-length window (tools/reference_tracking.check_video);
- recognisability of the whole long video and of each chunk-length window.
"""

from __future__ import annotations

import statistics

import torch
from reference_quality_video import SAMPLER, SCHEDULER, conditioning
from reference_tracking import check_video

from rtv.kernels.reference_prompts import UNCONDITIONAL
from rtv.kernels.seams import SeamSettings, align_joined_video, color_statistics
from rtv.kernels.temporal_metrics import measure_pairs, summarize
from rtv.sampling.chunk_plan import TEMPORAL_STRIDE, ChunkPlan, plan_chunks
from rtv.sampling.streaming import StreamingSampler, StreamSettings

SEAM_FIGURES = (
    "mawe",
    "warp_error_mean",
    "motion_change_px_mean",
    "flicker_mean",
    "within_chunk_warp_error",
    "seam_warp_error_ratio_max",
    "seam_motion_change_px_ratio_max",
    "seam_flicker_ratio_max",
)
SEAM_OVERLAP_LATENTS = 4
"""Overlap m latents per this many latents of a chunk (at least 1): 9 frames for 33-frame chunks."""


def stream_plan(chunk_frames: int, chunks: int, seed: int) -> ChunkPlan:
    latents = (chunk_frames - 1) // TEMPORAL_STRIDE
    overlap = TEMPORAL_STRIDE * max(1, latents // SEAM_OVERLAP_LATENTS) + 1
    total = chunk_frames + (chunks - 1) * (chunk_frames - overlap)
    return plan_chunks(total, chunk_frames, overlap, seed=seed)


def stream_video(model, vae, prompt: str, plan: ChunkPlan, width: int, height: int, steps: int, cfg: float):
    settings = StreamSettings(
        width=width, height=height, steps=steps, cfg=cfg, sampler_name=SAMPLER, scheduler=SCHEDULER
    )
    sampler = StreamingSampler(model, conditioning(prompt), conditioning(UNCONDITIONAL), vae, plan, settings)
    return sampler.run().images.float().clamp(0, 1)  # [frames, H, W, 3]


def seam_figures(frames: torch.Tensor, plan: ChunkPlan) -> dict:
    summary = summarize(measure_pairs(frames.movedim(-1, 1)), plan.chunk_frames, plan.overlap_frames)
    seams = [
        {k: seam[k] for k in ("frame", "warp_error_ratio", "motion_change_px_ratio", "flicker_ratio")}
        for seam in summary["seams"]
    ]
    return {**{k: summary[k] for k in SEAM_FIGURES}, "seams": seams}


def chunk_windows(plan: ChunkPlan) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(each chunk's whole window, each chunk's new frames) as [start, stop) of the joined video."""
    whole = [(c.first_frame, c.first_frame + plan.chunk_frames) for c in plan.chunks]
    new = [
        (start if c.index == 0 else start + plan.overlap_frames, stop)
        for c, (start, stop) in zip(plan.chunks, whole)
    ]
    return whole, new


def drift_figures(frames: torch.Tensor, plan: ChunkPlan, prompt: str) -> dict:
    whole, new = chunk_windows(plan)
    stats = [color_statistics(frames[a:b].movedim(-1, 1), "lab") for a, b in new]
    shift = [float((s.mean - stats[0].mean).norm()) for s in stats]
    verdicts = [check_video(frames[a:b], prompt) for a, b in whole]
    return {
        "lab_mean_shift": shift,
        "lightness_spread_ratio": [float(s.std[0] / stats[0].std[0]) for s in stats],
        "last_chunk_lab_shift": shift[-1],
        "object_found_share": [v.detected_share for v in verdicts],
        "windows_recognisable": [v.passed for v in verdicts],
    }


def measure_video(frames: torch.Tensor, plan: ChunkPlan, prompt: str) -> dict:
    drift = drift_figures(frames, plan, prompt)
    return {
        **seam_figures(frames, plan),
        "drift": drift,
        "recognisable": check_video(frames, prompt).passed,
        "window_pass_rate": statistics.fmean(drift["windows_recognisable"]),
    }


def mean_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.fmean(values) if values else None


def streaming_quality(
    model,
    vae,
    jobs: list[tuple[str, int]],
    chunk_frames: int,
    chunks: int,
    width: int,
    height: int,
    steps: int,
    cfg: float,
    progress=print,
) -> dict:
    variants = {"raw": [], "aligned": []}
    plan = None
    for prompt, seed in jobs:
        plan = stream_plan(chunk_frames, chunks, seed)
        frames = stream_video(model, vae, prompt, plan, width, height, steps, cfg)
        aligned, _ = align_joined_video(
            frames.movedim(-1, 1), plan.chunk_frames, plan.overlap_frames, SeamSettings()
        )
        variants["raw"].append({"prompt": prompt, "seed": seed, **measure_video(frames, plan, prompt)})
        variants["aligned"].append(
            {"prompt": prompt, "seed": seed, **measure_video(aligned.movedim(1, -1), plan, prompt)}
        )
        progress(f"  stream {prompt!r}: {frames.shape[0]} frames")
    summary = {}
    for name, rows in variants.items():
        summary[name] = {key: mean_of(rows, key) for key in SEAM_FIGURES}
        summary[name]["last_chunk_lab_shift"] = statistics.fmean(
            r["drift"]["last_chunk_lab_shift"] for r in rows
        )
        summary[name]["recognisable_rate"] = statistics.fmean(r["recognisable"] for r in rows)
        summary[name]["window_pass_rate"] = statistics.fmean(r["window_pass_rate"] for r in rows)
    return {
        "total_frames": plan.total_frames,
        "chunk_frames": plan.chunk_frames,
        "overlap_frames": plan.overlap_frames,
        "chunks": len(plan.chunks),
        "steps": steps,
        "cfg": cfg,
        "align": "kernels.seams.align_joined_video, SeamSettings() defaults (RTV_TemporalAlign, joined)",
        "summary": summary,
        "videos": variants,
    }
