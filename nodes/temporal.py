"""RTV_TemporalAlign and RTV_TemporalMetrics: seam alignment and temporal consistency measurements
of chunked videos (kernels/seams.py, kernels/temporal_metrics.py)."""

from __future__ import annotations

import json

import comfy.model_management
import comfy.utils
import torch
from comfy_api.latest import io, ui

from ..kernels.seams import (
    COLOR_CORRECTIONS,
    CURVES,
    HOLD,
    METHODS,
    SeamSettings,
    align_joined_video,
    join_back_to_back,
    join_clips,
    joined_seams,
)
from ..kernels.temporal_metrics import DEFAULT_PAIRS_PER_BATCH, measure_pairs, summarize

MAX_FRAMES = 100_000
LAYOUTS = ("joined", "back_to_back")
DEFAULT_FLOW_MAX_SIDE = 512
MAX_SIDE_LIMIT = 8192


def flow_max_side_input(default: int, tooltip: str) -> io.Int.Input:
    """The optional flow-resolution input every flow node has (same name, range and step)."""
    return io.Int.Input(
        "flow_max_side", default=default, min=0, max=MAX_SIDE_LIMIT, step=16, optional=True, tooltip=tooltip
    )


def pairs_per_batch_input(default: int, tooltip: str) -> io.Int.Input:
    """The optional flow batch-size input of the nodes that estimate flow over many frame pairs."""
    return io.Int.Input("pairs_per_batch", default=default, min=1, max=256, optional=True, tooltip=tooltip)


def send_text(text: str, node_id: str | None) -> None:
    """The node's status line in the UI (chunk/seam progress)."""
    from server import PromptServer

    if node_id is not None and getattr(PromptServer, "instance", None) is not None:
        PromptServer.instance.send_progress_text(text, node_id)


def to_frames(images: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE ``[N, H, W, C]`` -> ``[N, C, H, W]`` (a view)."""
    return images.movedim(-1, 1)


def to_images(frames: torch.Tensor) -> torch.Tensor:
    return frames.movedim(1, -1).contiguous().to(comfy.model_management.intermediate_device())


class Progress:
    """Progress bar and status text over ``total`` steps; every update is an interrupt checkpoint."""

    def __init__(self, total: int, node_id: str | None, label: str):
        self.pbar = comfy.utils.ProgressBar(max(total, 1))
        self.node_id, self.label = node_id, label

    def __call__(self, done: int, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        self.pbar.update_absolute(done, max(total, 1))
        send_text(f"{self.label} {done}/{total}", self.node_id)


class TemporalAlign(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_TemporalAlign",
            display_name="Temporal Align (RTV)",
            category="RealtimeVideo/temporal",
            description=(
                "Removes seams between video chunks: where two renditions of the overlap exist (chunks laid back "
                "to back, or two clips joined with next_clip) they are morphed into each other along their optical "
                "flow instead of crossfaded (no ghosting); in a joined video (the Streaming Sampler's output) the "
                "new chunk's jump is pulled back and released. Colours of the new chunk are matched to the previous "
                "one and the correction fades out over the next frames, so nothing pops. Weight-free, GPU when "
                "available."
            ),
            inputs=[
                io.Image.Input(
                    "images",
                    tooltip="The video. joined: chunks share their overlap once (Streaming Sampler output). "
                    "back_to_back: chunks one after the other, each repeating the overlap. With next_clip: the "
                    "first of two clips.",
                ),
                io.Int.Input(
                    "chunk_frames",
                    default=81,
                    min=2,
                    max=MAX_FRAMES,
                    tooltip="Frames per chunk, as generated (the Streaming Sampler's chunk_frames after its 4a+1 "
                    "snapping). Ignored when next_clip is connected.",
                ),
                io.Int.Input(
                    "overlap_frames",
                    default=17,
                    min=0,
                    max=MAX_FRAMES,
                    tooltip="Frames each chunk shares with the previous one (4m+1 for the Streaming Sampler). With "
                    "next_clip: how many of its first frames repeat the last frames of images.",
                ),
                io.Combo.Input(
                    "method",
                    options=list(METHODS),
                    default="flow_blend",
                    tooltip="flow_blend: align by optical flow, crossfade where flow is unreliable. crossfade: plain "
                    "eased crossfade of the overlap (ghosts when the renditions disagree). none: hard cut.",
                ),
                io.Combo.Input(
                    "color_correction",
                    options=list(COLOR_CORRECTIONS),
                    default="mean_std",
                    tooltip="Match the new chunk's colour statistics to the previous chunk: per RGB channel "
                    "(mean_std) or in CIE Lab (lab). none: leave colours.",
                ),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    tooltip="How much of the alignment and colour correction to apply (0 = plain crossfade / "
                    "unchanged).",
                ),
                io.Combo.Input(
                    "layout",
                    options=list(LAYOUTS),
                    default="joined",
                    optional=True,
                    tooltip="joined: overlaps appear once (Streaming Sampler output), the length is unchanged. "
                    "back_to_back: every chunk repeats the overlap; the output is shorter by the repeats.",
                ),
                io.Image.Input(
                    "next_clip",
                    optional=True,
                    tooltip="Join two clips: its first overlap_frames frames show the same moments as the last "
                    "overlap_frames of images (e.g. an extension generated from them).",
                ),
                io.Int.Input(
                    "correction_frames",
                    default=24,
                    min=HOLD,
                    max=MAX_FRAMES,
                    optional=True,
                    tooltip="Frames after the seam over which the colour correction (and a joined video's jump "
                    "correction) fades out. More = gentler. -1 = keep the colour correction to the end.",
                ),
                io.Combo.Input(
                    "curve",
                    options=list(CURVES),
                    default="ease_in_out",
                    optional=True,
                    tooltip="Shape of the blend across the overlap and of the fade-out.",
                ),
                flow_max_side_input(
                    DEFAULT_FLOW_MAX_SIDE,
                    "Estimate optical flow on frames scaled to this longer side (0 = full size). Seam "
                    "misalignments are smooth, so 512 is accurate and much faster than full 832 x 480.",
                ),
            ],
            outputs=[io.Image.Output(display_name="images")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        images,
        chunk_frames: int,
        overlap_frames: int,
        method: str,
        color_correction: str,
        strength: float,
        layout: str = "joined",
        next_clip=None,
        correction_frames: int = 24,
        curve: str = "ease_in_out",
        flow_max_side: int = DEFAULT_FLOW_MAX_SIDE,
    ) -> io.NodeOutput:
        settings = SeamSettings(
            method=method,
            color_correction=color_correction,
            strength=strength,
            correction_frames=correction_frames,
            curve=curve,
            flow_max_side=flow_max_side,
        )
        device = comfy.model_management.get_torch_device()
        node_id = cls.hidden.unique_id
        frames = to_frames(images)
        if next_clip is not None:
            progress = Progress(1, node_id, "seam")
            out, report = join_clips(frames, to_frames(next_clip), overlap_frames, settings, device)
            progress(1, 1)
            reports = [report]
        elif layout == "back_to_back":
            seams = max(0, -(-images.shape[0] // chunk_frames) - 1)
            out, reports = join_back_to_back(
                frames, chunk_frames, overlap_frames, settings, device, Progress(seams, node_id, "seam")
            )
        else:
            seams = joined_seams(images.shape[0], chunk_frames, overlap_frames)
            out, reports = align_joined_video(
                frames, chunk_frames, overlap_frames, settings, device, Progress(len(seams), node_id, "seam")
            )
        summary = {
            "frames_in": int(images.shape[0]),
            "frames_out": int(out.shape[0]),
            "seams": [r.as_dict() for r in reports],
        }
        if not reports:
            summary["note"] = (
                f"no seam: {images.shape[0]} frames fit in one chunk of {chunk_frames}; check chunk_frames"
            )
        send_text(f"{len(reports)} seam(s) aligned, {out.shape[0]} frames", node_id)
        return io.NodeOutput(to_images(out), ui=ui.PreviewText(json.dumps(summary)))


class TemporalMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_TemporalMetrics",
            display_name="Temporal Metrics (RTV)",
            category="RealtimeVideo/temporal",
            description=(
                "Measures a video's temporal consistency with weight-free optical flow: warp error per frame pair, "
                "a MAWE-style motion-normalised warp error, motion change (jumps, stutter), flicker, and with "
                "chunk sizes each seam against the inside of the chunks. JSON on the node and as a STRING."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The video to measure."),
                io.Int.Input(
                    "chunk_frames",
                    default=0,
                    min=0,
                    max=MAX_FRAMES,
                    optional=True,
                    tooltip="Frames per chunk, to report seams (0 = no seams). Use the values the video was made "
                    "with (joined layout: overlaps appear once).",
                ),
                io.Int.Input(
                    "overlap_frames",
                    default=0,
                    min=0,
                    max=MAX_FRAMES,
                    optional=True,
                    tooltip="Frames each chunk shares with the previous one.",
                ),
                io.Int.Input(
                    "max_side",
                    default=DEFAULT_FLOW_MAX_SIDE,
                    min=0,
                    max=MAX_SIDE_LIMIT,
                    step=16,
                    optional=True,
                    tooltip="Measure on frames scaled to this longer side (0 = full size). Compare numbers only "
                    "between videos measured at the same size.",
                ),
                pairs_per_batch_input(
                    DEFAULT_PAIRS_PER_BATCH,
                    "Frame pairs per optical-flow batch: more is faster on a GPU, uses more memory.",
                ),
            ],
            outputs=[io.String.Output(display_name="metrics_json")],
            hidden=[io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        images,
        chunk_frames: int = 0,
        overlap_frames: int = 0,
        max_side: int = DEFAULT_FLOW_MAX_SIDE,
        pairs_per_batch: int = DEFAULT_PAIRS_PER_BATCH,
    ) -> io.NodeOutput:
        if chunk_frames and overlap_frames >= chunk_frames:
            raise ValueError(
                f"[RTV] overlap_frames ({overlap_frames}) must be below chunk_frames ({chunk_frames}); "
                "use the values the video was generated with, or chunk_frames 0 for no seams."
            )
        node_id = cls.hidden.unique_id
        pairs = max(images.shape[0] - 1, 0)
        measures = measure_pairs(
            to_frames(images),
            max_side=max_side,
            pairs_per_batch=pairs_per_batch,
            device=comfy.model_management.get_torch_device(),
            progress=Progress(pairs, node_id, "frame pairs"),
        )
        report = summarize(measures, chunk_frames, overlap_frames)
        text = json.dumps(report)
        headline = {k: v for k, v in report.items() if not isinstance(v, list)}
        headline["seams"] = report["seams"]
        send_text(f"{pairs} frame pairs measured", node_id)
        return io.NodeOutput(text, ui=ui.PreviewText(json.dumps(headline, indent=1)))


NODES = [TemporalAlign, TemporalMetrics]
