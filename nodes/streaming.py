"""RTV_StreamingSampler: long videos chunk by chunk with ComfyUI's own samplers (sampling/streaming.py)."""

from __future__ import annotations

import json
import os

import comfy.model_management
import comfy.samplers
import comfy.utils
import folder_paths
import latent_preview
import torch
from comfy_api.latest import io, ui
from PIL import Image
from safetensors.torch import save_file

from ..sampling.chunk_plan import plan_chunks
from ..sampling.streaming import OVERLAP_MODES, ChunkHooks, StreamingSampler, StreamSettings, latent_layout

MAX_FRAMES = 100_000
MAX_RESOLUTION = 8192
CHUNK_FPS = 16.0  # frame rate of the per-chunk WEBP files (Wan 2.1 renders 16 fps)


def _send_text(text: str, node_id: str | None) -> None:
    from server import PromptServer

    if node_id is not None and getattr(PromptServer, "instance", None) is not None:
        PromptServer.instance.send_progress_text(text, node_id)


class NodeChunkHooks(ChunkHooks):
    """Progress over all chunks' steps with latent previews, chunk text, and finished chunks on disk."""

    def __init__(self, model, total_chunks: int, steps: int, save_prefix: str, node_id: str | None):
        self.model = model
        self.steps = steps
        self.node_id = node_id
        self.pbar = comfy.utils.ProgressBar(total_chunks * steps)
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        self.save_prefix = save_prefix.strip()
        self.saved: list[str] = []

    def sampling_callback(self, chunk_index: int, steps: int):
        def callback(step, x0, x, total_steps):
            preview = self.previewer.decode_latent_to_preview_image("JPEG", x0) if self.previewer else None
            self.pbar.update_absolute(chunk_index * self.steps + min(step + 1, self.steps), None, preview)

        return callback

    def chunk_started(self, plan, chunk_index):
        c = plan.chunks[chunk_index]
        _send_text(f"chunk {chunk_index + 1}/{len(plan.chunks)}: frames {c.first_frame}-"
                   f"{c.first_frame + plan.chunk_frames - 1}, seed {c.seed}, global latent {c.first_latent}", self.node_id)

    def chunk_finished(self, plan, report, frames, chunk_latents):
        if self.save_prefix:
            self.saved.append(self._save_chunk(frames, chunk_latents, report.index))
        _send_text(f"chunk {report.index + 1}/{len(plan.chunks)} done in {report.seconds:.1f} s"
                   + (f", saved {self.saved[-1]}" if self.saved else ""), self.node_id)

    def _save_chunk(self, frames, chunk_latents, index: int) -> str:
        """The chunk's new frames as WEBP and all its latents (SaveLatent format, loadable by LoadLatent)."""
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, _, _ = folder_paths.get_save_image_path(
            f"{self.save_prefix}_chunk{index:03d}", out_dir, frames.shape[2], frames.shape[1])
        stem = os.path.join(folder, f"{name}_{counter:05}_")
        images = [Image.fromarray((f.clamp(0, 1) * 255).byte().numpy()) for f in frames]
        images[0].save(stem + ".webp", save_all=True, append_images=images[1:], duration=int(1000 / CHUNK_FPS),
                       lossless=False, quality=90)
        save_file({"latent_tensor": chunk_latents.contiguous(), "latent_format_version_0": torch.tensor([])},
                  stem + ".latent")
        return os.path.relpath(stem + ".webp", out_dir)


class StreamingSamplerNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_StreamingSampler",
            display_name="Streaming Sampler (RTV)",
            category="RealtimeVideo/sampling",
            description=(
                "Generates a video of any length chunk by chunk with the model's own sampler, each chunk "
                "continuing the previous one through an overlap, in constant GPU memory. Finished chunks are "
                "decoded at once (no VAE seam), saved to the output folder and survive an interrupt."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A Wan 2.1/2.2 model (T2V, TI2V 5B, I2V for i2v_start_frames; "
                                                "A14B: the high-noise expert, see model_low_noise) "
                                                "or a HunyuanVideo or LTX-Video model (pinned_latents)."),
                io.Conditioning.Input("positive", tooltip="Prompt conditioning, used for every chunk."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning, used for every chunk."),
                io.Vae.Input("vae", tooltip="The model's VAE: decodes each chunk as it finishes (the Wan 2.1 VAE "
                                            "with no seam at all; others, e.g. HunyuanVideo's, from the overlap)."),
                io.Int.Input("width", default=832, min=16, max=MAX_RESOLUTION, step=16,
                             tooltip="Frame width (x16; LTX-Video and Wan 2.2 5B x32)."),
                io.Int.Input("height", default=480, min=16, max=MAX_RESOLUTION, step=16,
                             tooltip="Frame height (x16; LTX-Video and Wan 2.2 5B x32)."),
                io.Int.Input("total_frames", default=161, min=1, max=MAX_FRAMES,
                             tooltip="Length of the whole video; rounded up to whole chunks (the node says so)."),
                io.Int.Input("chunk_frames", default=81, min=5, max=1001, step=4,
                             tooltip="Frames per chunk, 4a+1 (81 = Wan's trained length)."),
                io.Int.Input("overlap_frames", default=17, min=1, max=997, step=4,
                             tooltip="Frames shared with the previous chunk, 4m+1: more = smoother, slower."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of chunk 0; chunk k uses seed + k."),
                io.Int.Input("steps", default=30, min=1, max=1000, tooltip="Sampling steps per chunk."),
                io.Float.Input("cfg", default=6.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="uni_pc",
                               tooltip="Any ComfyUI sampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="simple",
                               tooltip="Any ComfyUI scheduler."),
                io.Combo.Input("overlap_mode", options=list(OVERLAP_MODES), default="pinned_latents",
                               tooltip="pinned_latents: the overlap's latents are held fixed (any T2V/I2V model). "
                                       "i2v_start_frames: the previous chunk's last frames start the next one "
                                       "(I2V models)."),
                io.Float.Input("anchor_strength", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Keep chunk 0's first frame as context at its global time index in every "
                                       "later chunk, with this attention weight (0 = off). Fights identity drift."),
                io.Float.Input("drift_correction", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="Pull each chunk's latent colour statistics toward chunk 0's (0 = off)."),
                io.Image.Input("start_image", optional=True,
                               tooltip="First frame of the video, scaled and centre-cropped to width x height (pinned in "
                                       "T2V and TI2V models, I2V start in I2V mode)."),
                io.ClipVisionOutput.Input("clip_vision_output", optional=True,
                                          tooltip="CLIP vision of the start image, for I2V models that use it "
                                                  "(Wan 2.1 I2V): passed to every chunk's I2V conditioning."),
                io.Conditioning.Input("chunk_prompts", optional=True,
                                      tooltip="Per-chunk prompts: one CLIP Text Encode per chunk joined in order with "
                                              "Conditioning (Combine). Chunk k uses the k-th, the last one repeats. "
                                              "Replaces 'positive' when connected."),
                io.String.Input("chunk_save_prefix", default="RealtimeVideo/stream", optional=True,
                                tooltip="Finished chunks are saved as WEBP under the output folder with this "
                                        "prefix, so an interrupt loses nothing. Empty: do not save."),
                io.Model.Input("model_low_noise", optional=True,
                               tooltip="Wan 2.2 A14B's low-noise expert (model is then the high-noise one): it "
                                       "takes over each chunk at low_noise_start_step, as in ComfyUI's two-"
                                       "KSamplerAdvanced template. Patch it like model (Monarch, LoRAs)."),
                io.Int.Input("low_noise_start_step", default=10, min=1, max=999, optional=True,
                             tooltip="With model_low_noise: the step where the low-noise expert takes over "
                                     "(Wan 2.2 templates: 10 of 20). Ignored without it."),
            ],
            outputs=[io.Image.Output(display_name="images"), io.Latent.Output(display_name="latent")],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, positive, negative, vae, width, height, total_frames, chunk_frames, overlap_frames, seed,
                steps, cfg, sampler_name, scheduler, overlap_mode, anchor_strength, drift_correction,
                start_image=None, clip_vision_output=None, chunk_prompts=None,
                chunk_save_prefix="RealtimeVideo/stream", model_low_noise=None,
                low_noise_start_step=10) -> io.NodeOutput:
        layout = latent_layout(model, vae)
        plan = plan_chunks(total_frames, chunk_frames, overlap_frames, seed=seed, temporal_stride=layout.temporal_stride)
        node_id = cls.hidden.unique_id
        _send_text(plan.describe(), node_id)
        settings = StreamSettings(width=width, height=height, steps=steps, cfg=cfg, sampler_name=sampler_name,
                                  scheduler=scheduler, overlap_mode=overlap_mode, anchor_strength=anchor_strength,
                                  drift_correction=drift_correction, low_noise_start_step=low_noise_start_step)
        hooks = NodeChunkHooks(model, len(plan.chunks), steps, chunk_save_prefix or "", node_id)
        result = StreamingSampler(model, positive, negative, vae, plan, settings, start_image, hooks,
                                  clip_vision_output=clip_vision_output, chunk_positives=chunk_prompts,
                                  model_low_noise=model_low_noise).run()
        report = {
            "plan": plan.describe(), "frames": int(result.images.shape[0]), "chunks": len(plan.chunks),
            "seeds": [r.seed for r in result.reports], "global_latent_offsets": [r.first_latent for r in result.reports],
            "seconds": [r.seconds for r in result.reports], "peak_working_bytes": result.peak_working_bytes,
            "working_bytes": [r.working_bytes for r in result.reports], "peak_device_bytes": result.peak_device_bytes,
            "saved_chunks": hooks.saved,
            "low_noise_expert_from_step": low_noise_start_step if model_low_noise is not None else None,
        }
        comfy.model_management.soft_empty_cache()
        return io.NodeOutput(result.images, {"samples": result.latents}, ui=ui.PreviewText(json.dumps(report)))


NODES = [StreamingSamplerNode]
