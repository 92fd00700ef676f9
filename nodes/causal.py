"""RTV_CausalStreamingSampler: real-time causal generation with a KV cache (sampling/causal.py)."""

from __future__ import annotations

import json

import comfy.model_management
from comfy_api.latest import io, ui
from latent_preview import MAX_PREVIEW_RESOLUTION
from PIL import Image

from ..sampling.causal import CausalStreamingSampler
from ..sampling.causal_schedule import ALL_FRAMES, causal_sigmas, plan_causal_chunks
from .streaming import MAX_FRAMES, MAX_RESOLUTION, NodeChunkHooks, _send_text

MAX_CHUNK_LATENTS = 64
MAX_WINDOW_FRAMES = 4096
MAX_SHIFT = 100.0
MB = 1 << 20


class CausalNodeHooks(NodeChunkHooks):
    """Progress over every model call (steps + the clean pass), each finished chunk's last decoded frame as
    the node's preview while the next chunk runs, chunk text, and finished chunks saved as they complete."""

    def __init__(self, model, plan, steps: int, save_prefix: str, node_id: str | None):
        super().__init__(model, len(plan.chunks), steps + 1, save_prefix, node_id)

    def chunk_started(self, plan, chunk_index):
        c = plan.chunks[chunk_index]
        _send_text(
            f"chunk {chunk_index + 1}/{len(plan.chunks)}: latent frames {c.first_latent}-"
            f"{c.first_latent + c.latents - 1} (frames {c.first_frame}-{c.first_frame + c.frames - 1}), seed {c.seed}",
            self.node_id,
        )

    def chunk_finished(self, plan, report, frames, chunk_latents):
        if self.save_prefix and frames is not None:
            self.saved.append(self._save_chunk(frames, chunk_latents, report.index))
        preview = None
        if frames is not None:
            last = Image.fromarray((frames[-1].clamp(0, 1) * 255).byte().numpy())
            preview = ("JPEG", last, MAX_PREVIEW_RESOLUTION)
        self.pbar.update_absolute((report.index + 1) * self.steps, None, preview)
        _send_text(
            f"chunk {report.index + 1}/{len(plan.chunks)} done in {report.seconds:.2f} s (generate "
            f"{report.generate_seconds:.2f}, decode {report.decode_seconds:.2f}); KV cache "
            f"{report.working_bytes / MB:.1f} MB holds latent frames {_ranges(report.cached_frames)}"
            + (f"; saved {self.saved[-1]}" if self.saved else ""),
            self.node_id,
        )


def _ranges(frames: list[int]) -> str:
    """[0, 1, 2, 5, 6] -> '0-2, 5-6'."""
    parts, start = [], None
    for i, f in enumerate(frames):
        if start is None:
            start = f
        if i + 1 == len(frames) or frames[i + 1] != f + 1:
            parts.append(f"{start}-{f}" if f != start else f"{f}")
            start = None
    return ", ".join(parts)


class CausalStreamingSamplerNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_CausalStreamingSampler",
            display_name="Causal Streaming Sampler (RTV)",
            category="RealtimeVideo/sampling",
            description=(
                "Real-time video with causal chunk-wise Wan models (Self-Forcing, CausVid): a few latent frames "
                "at a time in a few steps, each chunk attending to a KV cache of the frames before it. Finished "
                "chunks are decoded at once (no VAE seam), previewed while the next one is generated and saved "
                "to the output folder, so an interrupt loses nothing. Works with Monarch Attention (RTV)."
            ),
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="A causal chunk-wise Wan 2.1 T2V model, e.g. Self-Forcing DMD 1.3B. An ordinary "
                    "(bidirectional) Wan model runs but was not trained for this and gives poor video.",
                ),
                io.Conditioning.Input(
                    "positive", tooltip="Prompt conditioning (no negative: these models use no CFG)."
                ),
                io.Vae.Input("vae", tooltip="The Wan 2.1 VAE: decodes each chunk as it finishes."),
                io.Int.Input(
                    "total_frames",
                    default=81,
                    min=1,
                    max=MAX_FRAMES,
                    tooltip="Length of the video in frames, 4k+1 (81 = 5 s at 16 fps); other values round up. "
                    "Not limited by the cache: set kv_window_frames for long videos.",
                ),
                io.Int.Input(
                    "chunk_latent_frames",
                    default=3,
                    min=1,
                    max=MAX_CHUNK_LATENTS,
                    tooltip="Latent frames generated per chunk (1 latent = 4 frames). Use what the model was "
                    "trained with: 3 for Self-Forcing chunk-wise, 1 for frame-wise variants.",
                ),
                io.String.Input(
                    "timesteps",
                    default="1000,750,500,250",
                    tooltip="Denoising steps per chunk as training timesteps (1-1000, decreasing, comma "
                    "separated), warped by shift. Self-Forcing: 1000,750,500,250.",
                ),
                io.Float.Input(
                    "shift",
                    default=5.0,
                    min=0.01,
                    max=MAX_SHIFT,
                    step=0.1,
                    tooltip="Flow shift that warps the timesteps (Self-Forcing: 5.0; 1.0 = no warp).",
                ),
                io.Int.Input(
                    "kv_window_frames",
                    default=ALL_FRAMES,
                    min=ALL_FRAMES,
                    max=MAX_WINDOW_FRAMES,
                    tooltip="Latent frames each chunk attends to, its own included (rolling KV cache): memory "
                    "stays flat for any length. -1 keeps every frame (Self-Forcing default for 81 frames; memory "
                    "grows with length). 21 = the model's trained context.",
                ),
                io.Int.Input(
                    "sink_frames",
                    default=0,
                    min=0,
                    max=MAX_WINDOW_FRAMES,
                    tooltip="First latent frames that never leave a rolling cache (attention sinks: keep the "
                    "opening scene as reference). Needs kv_window_frames >= sink_frames + chunk_latent_frames.",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of chunk 0; chunk k uses seed + k. Same seed, same video.",
                ),
                io.Int.Input(
                    "width",
                    default=832,
                    min=16,
                    max=MAX_RESOLUTION,
                    step=16,
                    optional=True,
                    tooltip="Frame width (x16); Self-Forcing is trained at 832x480.",
                ),
                io.Int.Input(
                    "height",
                    default=480,
                    min=16,
                    max=MAX_RESOLUTION,
                    step=16,
                    optional=True,
                    tooltip="Frame height (x16).",
                ),
                io.String.Input(
                    "chunk_save_prefix",
                    default="RealtimeVideo/causal",
                    optional=True,
                    tooltip="Finished chunks are saved as WEBP (+ latents) under the output folder with this "
                    "prefix as they complete, so an interrupt loses nothing. Empty: do not save.",
                ),
                io.Boolean.Input(
                    "overlap_decode",
                    default=False,
                    optional=True,
                    tooltip="On CUDA, decode each chunk while the next one samples (a side stream). Same "
                    "frames; every chunk after the first is shown one chunk later. It helps when the GPU "
                    "has gaps, i.e. on slower hosts: H100, 480p, Monarch, with cuda_graphs it went from -8 % "
                    "to +8 % frames/s between machines (without graphs -7 % to +22 %). Off by default.",
                ),
                io.Boolean.Input(
                    "cuda_graphs",
                    default=True,
                    optional=True,
                    tooltip="On CUDA, replay the model's work from CUDA graphs (same frames, far less Python "
                    "and launch time per step). Each transformer block runs as two recorded graphs around "
                    "its self-attention, which stays a normal call over however many keys are cached; once "
                    "a rolling window is full, the whole model call is one graph. H100, 1.3B, 480p, 81 "
                    "frames, Monarch: 28-33 frames/s end to end, 1.19-1.30x dense over 9 processes on 5 "
                    "machines (without graphs 1.00-1.24x); under ComfyUI's default cudaMallocAsync allocator "
                    "31.8 frames/s, 1.31x. About 0.5 GB more GPU memory at 480p. Blocks whose weights are "
                    "offloaded or cast every call run normally; if something in the model cannot be "
                    "recorded, the run goes on without graphs and says why in the log.",
                ),
            ],
            outputs=[io.Image.Output(display_name="images"), io.Latent.Output(display_name="latent")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive,
        vae,
        total_frames: int,
        chunk_latent_frames: int,
        timesteps: str,
        shift: float,
        kv_window_frames: int,
        sink_frames: int,
        seed: int,
        width: int = 832,
        height: int = 480,
        chunk_save_prefix: str = "RealtimeVideo/causal",
        overlap_decode: bool = False,
        cuda_graphs: bool = True,
    ) -> io.NodeOutput:
        sigmas = causal_sigmas(timesteps, shift)
        plan = plan_causal_chunks(total_frames, chunk_latent_frames, seed, kv_window_frames, sink_frames)
        node_id = cls.hidden.unique_id
        _send_text(plan.describe(), node_id)
        hooks = CausalNodeHooks(model, plan, len(sigmas) - 1, chunk_save_prefix or "", node_id)
        sampler = CausalStreamingSampler(
            model, positive, vae, plan, sigmas, width, height, hooks, overlap_decode=overlap_decode,
            cuda_graphs=cuda_graphs,
        )
        result = sampler.run()
        stats = result.kv_stats
        report = {
            "plan": plan.describe(),
            "frames": int(result.images.shape[0]),
            "latent_frames": int(result.latents.shape[2]),
            "chunks": len(plan.chunks),
            "sigmas": [round(s, 6) for s in sigmas],
            "seeds": [r.seed for r in result.reports],
            "global_latent_offsets": [r.first_latent for r in result.reports],
            "seconds": [r.seconds for r in result.reports],
            "generate_seconds": [r.generate_seconds for r in result.reports],
            "decode_seconds": [r.decode_seconds for r in result.reports],
            "first_chunk_latency_s": result.reports[0].seconds,
            "kv_cache_bytes": [r.working_bytes for r in result.reports],
            "cached_latent_frames": [r.cached_frames for r in result.reports],
            "self_attention_calls": stats.self_attention_calls,
            "calls_with_cached_keys": stats.calls_with_cached_keys,
            "max_key_frames": stats.max_key_frames,
            "text_kv_computed": stats.text_kv_computed,
            "text_kv_reused": stats.text_kv_reused,
            "peak_device_bytes": result.peak_device_bytes,
            "saved_chunks": hooks.saved,
        }
        if sampler.graph is not None:
            report["cuda_graphs"] = sampler.graph.summary()
        comfy.model_management.soft_empty_cache()
        return io.NodeOutput(
            result.images, {"samples": result.latents}, ui=ui.PreviewText(json.dumps(report))
        )


NODES = [CausalStreamingSamplerNode]
