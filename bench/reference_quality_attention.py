"""Section 1 of bench/reference_quality.py: attention of the reference model's real forward passes.

Procedural clips of the model's prompt classes are encoded by its VAE, noised to a few sigmas of
Wan's shift-8 schedule and passed once through ComfyUI's own sampler (``sample_custom``, one euler
step from sigma to 0 at cfg 1: exactly one model call, conditioned on the clip's class). An
attention override on the model clone records q, k, v of every call that the pack's self-attention
markers flag (patches/self_attention.py, the markers the Monarch patch relies on) and hands the call
on unchanged. Per block and averaged over clips, sigmas and heads:

- how far from uniform exact softmax attention is: entropy / log N (1 = uniform), largest
  probability, mass on the query's own latent frame (bench/structured_inputs.attention_diagnostics);
- Monarch attention (torch reference, float32) vs exact attention on the same q, k, v: relative L2,
  cosine and median per-token error (bench/monarch_quality.compare), and the density of each setting.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict

import torch
import torch.nn.functional as F
from monarch_quality import Setting, compare
from structured_inputs import attention_diagnostics

from rtv.kernels.monarch import density, monarch_attention, monarch_layout
from rtv.kernels.reference_prompts import PROMPT_TEXTS, UNCONDITIONAL, prompt_conditioning
from rtv.patches.self_attention import BLOCK_MARK, mark_self_attention

DIAGNOSTICS = ("normalized_entropy", "top1", "own_frame_mass", "top32_mass")
ERRORS = ("rel_l2", "cosine", "median_token_rel")


def encoded_clips(vae, prompts: list[str], seeds: list[int], size: tuple[int, int, int]) -> list[dict]:
    """Procedural clips (frames, height, width) of the prompts, encoded by the model's VAE, with a
    noise of the same seed and the conditioning of the prompt and of the unconditional prompt."""
    from procedural_video import generate_clips

    videos = generate_clips([PROMPT_TEXTS.index(p) for p in prompts], seeds, *size)
    items = []
    for prompt, seed, video in zip(prompts, seeds, videos):
        latent = vae.encode(video).float().cpu()
        items.append(
            {
                "label": f"{prompt} (seed {seed})",
                "latent": latent,
                "noise": torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed)),
                "positive": [[prompt_conditioning(prompt), {}]],
                "negative": [[prompt_conditioning(UNCONDITIONAL), {}]],
            }
        )
    return items


def heads_first(t: torch.Tensor, heads: int, skip_reshape: bool) -> torch.Tensor:
    """An attention input as ComfyUI passes it ([B, N, H*D], or [B, H, N, D] with skip_reshape) ->
    [B, H, N, D] float32 on the CPU."""
    if not skip_reshape:
        b, n, width = t.shape
        t = t.view(b, n, heads, width // heads).transpose(1, 2)
    return t.detach().float().cpu()


class SelfAttentionRecorder:
    """``optimized_attention_override`` that keeps (block, q, k, v) of each marked self-attention
    call and computes the call with the backend it was given."""

    def __init__(self):
        self.calls: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __deepcopy__(self, memo):  # model_options are deep-copied by ModelPatcher.clone
        return self

    def __call__(self, func, *args, **kwargs):
        block = (kwargs.get("transformer_options") or {}).get(BLOCK_MARK)
        if block is not None:
            heads = kwargs.get("heads", args[3] if len(args) > 3 else None)
            skip = kwargs.get("skip_reshape", False)
            self.calls.append((block, *(heads_first(t, heads, skip) for t in args[:3])))
        return func(*args, **kwargs)


def recording_clone(model):
    """A clone of a ComfyUI Wan ModelPatcher whose self-attention inputs are recorded."""
    clone = model.clone()
    recorder = SelfAttentionRecorder()
    clone.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = recorder
    mark_self_attention(clone)
    return clone, recorder


def forward_at_sigma(
    comfy, model, latent: torch.Tensor, noise: torch.Tensor, sigma: float, positive, negative
):
    """One model call on ``sigma * noise + (1 - sigma) * latent`` through ComfyUI's sampler."""
    sampler = comfy.samplers.sampler_object("euler")
    sigmas = torch.tensor([sigma, 0.0])
    comfy.sample.sample_custom(
        model, noise, 1.0, sampler, sigmas, positive, negative, latent, disable_pbar=True, seed=0
    )


def monarch_errors(q, k, v, grid: tuple[int, int, int], settings: list[Setting]) -> list[dict]:
    dense = F.scaled_dot_product_attention(q, k, v)
    return [compare(monarch_attention(q, k, v, grid, backend="torch", **asdict(s)), dense) for s in settings]


def setting_density(grid: tuple[int, int, int], tokens: int, setting: Setting) -> float:
    layout = monarch_layout(
        grid,
        tokens,
        tokens,
        tile_frames=setting.tile_frames,
        h_split=setting.h_split,
        w_split=setting.w_split,
    )
    return density(layout, setting.iterations, setting.exact_local)


def measure_attention(
    comfy,
    model,
    inputs: list[dict],
    sigmas: list[float],
    grid: tuple[int, int, int],
    settings: list[Setting],
    progress=print,
) -> dict:
    """``inputs``: dicts with ``latent`` (the VAE's latent of a clip), ``noise``, ``positive``,
    ``negative`` and ``label``. Returns per-block and overall figures (see the module doc)."""
    clone, recorder = recording_clone(model)
    per_block: dict[int, dict[str, list[float]]] = {}
    by_sigma: dict[float, list[float]] = {}
    tokens = grid[0] * grid[1] * grid[2]
    for item in inputs:
        for sigma in sigmas:
            recorder.calls.clear()
            forward_at_sigma(
                comfy, clone, item["latent"], item["noise"], sigma, item["positive"], item["negative"]
            )
            if not recorder.calls:
                raise RuntimeError(
                    "no self-attention call was recorded: the block markers did not reach the "
                    "attention override (ComfyUI's Wan attention path changed?)"
                )
            for block, q, k, v in recorder.calls:
                if q.shape[-2] != tokens:
                    raise RuntimeError(
                        f"block {block}: {q.shape[-2]} query tokens, the grid {grid} has {tokens}"
                    )
                row = per_block.setdefault(block, {})
                diagnostics = attention_diagnostics(q, k, grid, sample=tokens)
                for name in DIAGNOSTICS:
                    row.setdefault(name, []).append(diagnostics[name])
                by_sigma.setdefault(sigma, []).append(diagnostics["normalized_entropy"])
                for setting, errors in zip(settings, monarch_errors(q, k, v, grid, settings)):
                    for name in ERRORS:
                        row.setdefault(f"{setting.label()}|{name}", []).append(errors[name])
            progress(f"  {item['label']} sigma {sigma:.3f}: {len(recorder.calls)} self-attention calls")
    log_n = math.log(tokens)
    blocks = []
    for block in sorted(per_block):
        row = per_block[block]
        entry = {"block": block, **{name: statistics.fmean(row[name]) for name in DIAGNOSTICS}}
        entry["entropy_nats"] = entry["normalized_entropy"] * log_n
        entry["monarch"] = [
            {
                "label": s.label(),
                "setting": asdict(s),
                **{n: statistics.fmean(row[f"{s.label()}|{n}"]) for n in ERRORS},
            }
            for s in settings
        ]
        blocks.append(entry)
    overall = [
        {
            "label": s.label(),
            "setting": asdict(s),
            "density": setting_density(grid, tokens, s),
            **{n: statistics.fmean(b["monarch"][i][n] for b in blocks) for n in ERRORS},
        }
        for i, s in enumerate(settings)
    ]
    return {
        "grid": list(grid),
        "tokens": tokens,
        "log_n": log_n,
        "sigmas": sigmas,
        "clips": [item["label"] for item in inputs],
        "calls_per_pass": len(per_block),
        "normalized_entropy": statistics.fmean(b["normalized_entropy"] for b in blocks),
        "normalized_entropy_by_sigma": [[s, statistics.fmean(v)] for s, v in sorted(by_sigma.items())],
        "blocks": blocks,
        "monarch": overall,
    }
