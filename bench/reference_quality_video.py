"""Sections 2 and 4 of bench/reference_quality.py: sampled videos with dense vs Monarch attention, and
frame interpolation against the model's own frames.

Sampling is a stock KSampler's: ``comfy.sample.sample`` (euler, simple, the trained cfg, the
unconditional prompt as negative, ComfyUI's own noise for the seed), decoded by ComfyUI's VAE. The
Monarch runs patch the same loaded model with ``apply_monarch_attention`` (what RTV_MonarchAttention
does) and use the same seeds, so a video's distance to its dense twin is the approximation's effect
on the finished sample. Recognisability: tools/reference_tracking.py.

Interpolation: every other frame of a dense sample is dropped and rebuilt from its two neighbours
at t = 0.5, by flow interpolation (kernels/interpolate.interpolate_frames) and by the plain blend
(linear_blend); PSNR against the frames the model actually generated. The same on held-out
procedural clips of the same prompts tells how interpolable the training data's own motion is.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict

import torch
from monarch_quality import Setting
from reference_tracking import recognisability
from reference_vae import psnr

from rtv.kernels.interpolate import interpolate_frames, linear_blend
from rtv.kernels.reference_prompts import COLOURS, SHAPES, UNCONDITIONAL, prompt_class, prompt_conditioning
from rtv.patches.attention import MonarchSettings, apply_monarch_attention

SAMPLER, SCHEDULER = "euler", "simple"


def conditioning(text: str) -> list:
    return [[prompt_conditioning(text), {}]]


def varied_prompts(prompts: list[str], count: int) -> list[str]:
    """``count`` of ``prompts`` stepping colour and shape together (red square, green circle, blue
    triangle, yellow square, red circle, ...), so a few videos already cover every colour and shape."""
    colours, picked = list(COLOURS), []
    for i in range(count):
        want = (colours[i % len(colours)], SHAPES[i % len(SHAPES)])
        match = [p for p in prompts if (prompt_class(p).colour, prompt_class(p).shape) == want]
        picked.append(match[0] if match else prompts[i % len(prompts)])
    return picked


def sample_video(comfy, model, vae, prompt: str, seed: int, latent_shape: tuple, steps: int, cfg: float):
    """(latent [1, 16, t, h, w] as the sampler returns it, frames [T, H, W, 3] in [0, 1] on the CPU)."""
    latent = torch.zeros(latent_shape)
    noise = comfy.sample.prepare_noise(latent, seed)
    samples = comfy.sample.sample(
        model,
        noise,
        steps,
        cfg,
        SAMPLER,
        SCHEDULER,
        conditioning(prompt),
        conditioning(UNCONDITIONAL),
        latent,
        disable_pbar=True,
        seed=seed,
    )
    height, width = latent_shape[-2] * 8, latent_shape[-1] * 8
    frames = vae.decode(samples).reshape(-1, height, width, 3)
    return samples.float().cpu(), frames.float().cpu().clamp(0, 1)


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))


def recognisability_summary(videos: list[torch.Tensor], prompts: list[str]) -> dict:
    result = recognisability(videos, prompts)
    return {k: v for k, v in result.items() if k != "verdicts"}


def sample_all(comfy, model, vae, jobs: list[tuple[str, int]], latent_shape, steps, cfg, progress, label):
    latents, videos = [], []
    for prompt, seed in jobs:
        latent, frames = sample_video(comfy, model, vae, prompt, seed, latent_shape, steps, cfg)
        latents.append(latent)
        videos.append(frames)
    progress(f"  {label}: {len(videos)} videos")
    return latents, videos


def compare_sampling(
    comfy,
    model,
    vae,
    jobs: list[tuple[str, int]],
    latent_shape: tuple,
    steps: int,
    cfg: float,
    settings: list[Setting],
    progress=print,
) -> tuple[dict, list[torch.Tensor]]:
    """Dense and Monarch samples of the same (prompt, seed) jobs; returns the report and the dense
    videos (for the interpolation section)."""
    prompts = [p for p, _ in jobs]
    dense_latents, dense_videos = sample_all(
        comfy, model, vae, jobs, latent_shape, steps, cfg, progress, "dense"
    )
    report = {
        "jobs": [{"prompt": p, "seed": s} for p, s in jobs],
        "steps": steps,
        "cfg": cfg,
        "sampler": f"{SAMPLER}/{SCHEDULER}",
        "dense": {"recognisability": recognisability_summary(dense_videos, prompts)},
        "monarch": [],
    }
    for setting in settings:
        patched = apply_monarch_attention(model, MonarchSettings(**asdict(setting), backend="torch"))
        latents, videos = sample_all(
            comfy, patched, vae, jobs, latent_shape, steps, cfg, progress, setting.label()
        )
        report["monarch"].append(
            {
                "label": setting.label(),
                "setting": asdict(setting),
                "video_rel_l2": statistics.fmean(relative_l2(v, d) for v, d in zip(videos, dense_videos)),
                "video_psnr_db": statistics.fmean(psnr(v, d) for v, d in zip(videos, dense_videos)),
                "latent_rel_l2": statistics.fmean(relative_l2(v, d) for v, d in zip(latents, dense_latents)),
                "recognisability": recognisability_summary(videos, prompts),
            }
        )
    return report, dense_videos


def rebuild_dropped_frames(video: torch.Tensor) -> dict:
    """``video`` [T, H, W, 3]: drop the odd frames, rebuild each from its even neighbours."""
    frames = video.movedim(-1, 1).float()  # [T, 3, H, W]
    before, after = frames[0:-2:2], frames[2::2]
    truth = frames[1:-1:2]
    flow = interpolate_frames(before, after, 0.5)[:, 0].clamp(0, 1)
    blend = linear_blend(before, after, 0.5)[:, 0]
    return {
        "rebuilt_frames": len(truth),
        "flow_psnr_db": psnr(flow, truth),
        "blend_psnr_db": psnr(blend, truth),
    }


def interpolation_quality(videos: list[torch.Tensor], prompts: list[str]) -> dict:
    rows = [{"prompt": p, **rebuild_dropped_frames(v)} for v, p in zip(videos, prompts)]
    return {
        "method": "drop every other frame, rebuild at t = 0.5 from its neighbours; PSNR vs the model's frames",
        "flow_psnr_db": statistics.fmean(r["flow_psnr_db"] for r in rows),
        "blend_psnr_db": statistics.fmean(r["blend_psnr_db"] for r in rows),
        "videos": rows,
    }
