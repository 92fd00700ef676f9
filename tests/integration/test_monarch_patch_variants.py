"""The Monarch patch on every Wan variant ComfyUI loads, sampled in process by ComfyUI's own sampler.

Tiny random-weight DiTs of each variant go through ComfyUI's real detection and loader
(``comfy.sd.load_diffusion_model_state_dict``) and are sampled with ``comfy.sample.sample``. With one
token row per tile (h_split = rows) Monarch attention is exactly softmax attention, so a patched model
must reproduce the unpatched one: proof that the hook replaces exactly the video self-attention, with
the right token layout, for each variant's extra tokens (I2V image tokens, VACE blocks, camera
adapter, reference-latent frame, time-concatenated frames).
"""

from types import SimpleNamespace

import comfy.sample
import comfy.sd
import pytest
import torch
from tiny_models import FLF_IMAGE_TOKENS, TEXT_DIM, tiny_wan_state_dict

from rtv.patches.attention import MonarchSettings, apply_monarch_attention

LATENT = (1, 16, 3, 12, 16)  # 3 latent frames of 6 x 8 tokens
ROWS = 6
STEPS = 2
CLIP_TOKENS = 257


def _conditioning(variant: str, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    extra = {}
    if variant == "i2v":
        extra["clip_vision_output"] = SimpleNamespace(penultimate_hidden_states=torch.randn(1, CLIP_TOKENS, 1280, generator=g))
    if variant == "flf2v":
        extra["clip_vision_output"] = SimpleNamespace(
            penultimate_hidden_states=torch.randn(1, FLF_IMAGE_TOKENS, 1280, generator=g))
    if variant == "camera":
        # WAN_CAMERA_EMBEDDING is at pixel resolution (8 x the latent), 24 channels
        extra["camera_conditions"] = torch.randn(1, 24, LATENT[2], 8 * LATENT[3], 8 * LATENT[4], generator=g)
    if variant == "reference":
        extra["reference_latents"] = [torch.randn(1, 16, 1, LATENT[3], LATENT[4], generator=g)]
    if variant == "time_concat":
        extra["time_dim_concat"] = torch.randn(1, 16, 2, LATENT[3], LATENT[4], generator=g)
    return [[torch.randn(1, 16, TEXT_DIM, generator=g), extra]]


def _sample(model, variant: str, start_step=None, last_step=None, latent=None, seed=5):
    latent = torch.zeros(LATENT) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, STEPS, 2.0, "euler", "simple", _conditioning(variant),
                               _conditioning(variant, seed=1), latent, seed=seed, disable_pbar=True,
                               start_step=start_step, last_step=last_step,
                               force_full_denoise=last_step is None)


def _stats(model):
    return model.model_options["transformer_options"]["optimized_attention_override"].__self__.stats


VARIANTS = ["t2v", "i2v", "flf2v", "camera", "vace", "reference", "time_concat"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_row_per_tile_is_exact_and_every_self_attention_is_replaced(variant):
    weights = "t2v" if variant == "time_concat" else variant
    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict(weights, seed=0))
    dm = model.get_model_object("diffusion_model")
    self_attention_calls_per_forward = len(dm.blocks) + len(getattr(dm, "vace_blocks", []) or [])

    dense = _sample(model, variant)
    exact = apply_monarch_attention(model, MonarchSettings(h_split=ROWS))
    exact_out = _sample(exact, variant)
    stats = _stats(exact)
    plain_out = _sample(apply_monarch_attention(model, MonarchSettings(exact_local=-1)), variant)

    assert torch.allclose(exact_out, dense, rtol=1e-4, atol=1e-4 * dense.abs().max().item())
    assert (plain_out - dense).abs().max() > 1e-3 * dense.abs().max()
    assert stats.model_calls >= STEPS and stats.dense == 0
    assert stats.replaced == self_attention_calls_per_forward * stats.model_calls


def test_wan22_both_experts_are_patched_when_each_gets_the_node():
    high = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=10))
    low = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=11))
    high_patched = apply_monarch_attention(high, MonarchSettings(h_split=ROWS))
    low_patched = apply_monarch_attention(low, MonarchSettings(h_split=ROWS))

    def two_experts(first, second):
        half = _sample(first, "t2v", start_step=0, last_step=1)
        return _sample(second, "t2v", start_step=1, last_step=None, latent=half)

    dense = two_experts(high, low)
    patched = two_experts(high_patched, low_patched)
    assert torch.allclose(patched, dense, rtol=1e-4, atol=1e-4 * dense.abs().max().item())
    for expert in (high_patched, low_patched):
        stats = _stats(expert)
        assert stats.model_calls >= 1 and stats.replaced == 2 * stats.model_calls


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_block_and_projection_steps_are_comfyuis_bit_for_bit_on_the_cpu(variant):
    # Dense on every step: what is left of the patch is the fused q/k norm + RoPE and the fused
    # block steps, which on the CPU run ComfyUI's own ops in ComfyUI's order.
    weights = "t2v" if variant == "time_concat" else variant
    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict(weights, seed=0))
    patched = apply_monarch_attention(model, MonarchSettings(dense_first_steps=STEPS))
    dm = model.get_model_object("diffusion_model")
    fused_blocks = [p for p, f in patched.object_patches.items()
                    if p.startswith("diffusion_model.blocks.") and "fused_block_forward" in f.__qualname__]
    assert len(fused_blocks) == len(dm.blocks)
    projected = [p for p, f in patched.object_patches.items() if p.endswith("self_attn.forward")
                 and "projected_marked_forward" in f.__qualname__]
    assert len(projected) == len(dm.blocks) + len(getattr(dm, "vace_blocks", []) or [])

    assert torch.equal(_sample(patched, variant), _sample(model, variant))
    assert _stats(patched).replaced == 0 and _stats(patched).dense > 0


def test_blocks_patched_by_someone_else_keep_their_patch():
    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=0))
    other = model.clone()
    block = other.get_model_object("diffusion_model.blocks.0")
    foreign = type(block).forward.__get__(block)
    other.add_object_patch("diffusion_model.blocks.0.forward", foreign)
    attn = other.get_model_object("diffusion_model.blocks.1.self_attn")
    foreign_attn = type(attn).forward.__get__(attn)
    other.add_object_patch("diffusion_model.blocks.1.self_attn.forward", foreign_attn)

    patched = apply_monarch_attention(other, MonarchSettings(h_split=ROWS))
    assert patched.object_patches["diffusion_model.blocks.0.forward"] is foreign
    assert "fused_block_forward" in patched.object_patches["diffusion_model.blocks.1.forward"].__qualname__
    wrapped = patched.object_patches["diffusion_model.blocks.1.self_attn.forward"]
    assert "_marked_forward" in wrapped.__qualname__ and "_projected" not in wrapped.__qualname__
    dense = _sample(model, "t2v")
    assert torch.allclose(_sample(patched, "t2v"), dense, rtol=1e-4, atol=1e-4 * dense.abs().max().item())
    assert _stats(patched).replaced == 2 * _stats(patched).model_calls


def test_kernel_tuning_is_shown_on_the_node_during_its_run_only(monkeypatch, tmp_path):
    from rtv.kernels.monarch import autotune_cache

    monkeypatch.setenv(autotune_cache.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(autotune_cache, "_shared_cache", None)
    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=0))
    patched = apply_monarch_attention(model, MonarchSettings())
    patch = patched.model_options["transformer_options"]["optimized_attention_override"].__self__
    shown = []
    monkeypatch.setattr(patch, "send_text", shown.append)

    def a_run_that_tunes():  # what the first Triton call of a run does on a GPU
        return autotune_cache.pick_config("gpu|stage1|test", [{"BLOCK": 1}, {"BLOCK": 2}], lambda c: c["BLOCK"])

    assert patch.outer_sample_wrapper(a_run_that_tunes) == {"BLOCK": 1}
    assert "tuning its kernels for a new shape" in shown[0]
    assert shown[-1].startswith("Monarch attention replaced")  # the run's report follows
    assert autotune_cache.tuning_listeners == []
