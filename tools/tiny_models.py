"""Build tiny random-weight models that ComfyUI's own loaders detect, and map workflows onto them.

Real architectures (ComfyUI's ``WanModel``, ``WanVAE``, ``LTXVModel``, ``HunyuanVideo`` 1.0 and 1.5) at toy
sizes with deterministic random weights: they exercise the real loaders, samplers and our patches in seconds
on a CPU. The VAEs ComfyUI only builds at a fixed width (Wan 2.2's, HunyuanVideo 1.5's) are written at their
real size, and graphs that load them run small and short (``FULL_SIZE_VAE_TINY_SIZES``). Files are named like
the real checkpoints inside a ``rtv_tiny/`` subfolder, so a shipped workflow runs on them after one name
substitution (``for_tiny_host``). Speed does not depend on weight values; quality claims never rest on these
models.

Run with the host's python:  .host/venv/bin/python tools/tiny_models.py [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_FOLDER = "rtv_tiny"
SHIPPED_MODEL_PREFIX = "rtv_reference_"
"""The pack's own reference model ships its weights (reference_model/): its names are not mapped."""
BUILDER_VERSION = "1"  # bump when a tiny model's architecture or seed changes: files are rebuilt

# Real file names used by the shipped workflows (ComfyUI's Wan 2.1 repackaged release).
WAN21_T2V_1_3B = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN21_VAE = "wan_2.1_vae.safetensors"
UMT5_XXL = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
# Wan 2.1 Fun-Camera (VideoX-Fun v1.1 control-camera 1.3B), as ComfyUI's own Fun-Camera template names it.
WAN21_FUN_CAMERA_1_3B = "wan2.1_fun_camera_v1.1_1.3B_bf16.safetensors"
# Wan 2.2 Fun-Camera A14B (high-noise expert), as ComfyUI's Wan 2.2 Fun-Camera template names it.
WAN22_FUN_CAMERA_HIGH_NOISE = "wan2.2_fun_camera_high_noise_14B_fp8_scaled.safetensors"
WAN21_I2V_480P_14B = "wan2.1_i2v_480p_14B_fp16.safetensors"
WAN21_FLF2V_720P_14B = "wan2.1_flf2v_720p_14B_fp16.safetensors"
WAN21_T2V_1_3B_SELF_FORCING = "Wan2.1_T2V_1.3B_SelfForcing_DMD-FP8_e4m3fn.safetensors"
# Wan 2.2 T2V A14B's two experts (the Wan 2.1 14B architecture; the high-noise one runs the first steps).
WAN22_T2V_HIGH_NOISE_14B = "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"
WAN22_T2V_LOW_NOISE_14B = "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"
# Wan 2.2 TI2V 5B and its VAE (48 latent channels, 16x spatial), as ComfyUI's Wan 2.2 5B template names them.
WAN22_TI2V_5B = "wan2.2_ti2v_5B_fp16.safetensors"
WAN22_VAE = "wan2.2_vae.safetensors"
# HunyuanVideo T2V as ComfyUI's repackaged release names its files (Comfy-Org/HunyuanVideo_repackaged);
# LTX-Video's transformer alone (tiny only).
HUNYUAN_VIDEO_T2V_720P = "hunyuan_video_t2v_720p_bf16.safetensors"
HUNYUAN_VIDEO_VAE = "hunyuan_video_vae_bf16.safetensors"
HUNYUAN_CLIP_L = "clip_l.safetensors"
HUNYUAN_LLAVA = "llava_llama3_fp8_scaled.safetensors"
# HunyuanVideo 1.5 T2V 720p as ComfyUI's repackaged release names its files (Comfy-Org/HunyuanVideo_1.5_repackaged).
HUNYUAN_VIDEO15_720P = "hunyuanvideo1.5_720p_t2v_fp16.safetensors"
HUNYUAN_VIDEO15_VAE = "hunyuanvideo15_vae_fp16.safetensors"
HUNYUAN_VIDEO15_QWEN = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
HUNYUAN_VIDEO15_BYT5 = "byt5_small_glyphxl_fp16.safetensors"
# LTX-Video 0.9.5 as ComfyUI's own LTXV template loads it (one file: transformer and VAE), with T5-XXL.
LTXV_2B_CHECKPOINT = "ltx-video-2b-v0.9.5.safetensors"
LTXV_T5_XXL = "t5xxl_fp16.safetensors"
LTXV_TRANSFORMER = "ltxv_transformer.safetensors"
# The start image of shipped image-to-video workflows: ComfyUI ships input/example.png.
EXAMPLE_IMAGE = "example.png"

# Tiny DiT: two heads of the real head_dim 128 (ComfyUI derives num_heads = dim // 128).
TINY_WAN_DIM = 256
TINY_WAN_FFN = 512
TINY_WAN_LAYERS = 2
TINY_VAE_BASE_DIM = 8
# Conditioning stand-in for UMT5-XXL: its width is fixed by Wan's text_embedding, and its
# tokenizer pads to 512 tokens, so the test node defaults to the same shape.
TEXT_DIM = 4096
TEXT_TOKENS = 512
# The test host runs shipped workflows at this resolution (same frame count) to stay fast on a CPU.
TINY_WIDTH = 128
TINY_HEIGHT = 96


def tiny_name(real_name: str) -> str:
    return f"{TINY_FOLDER}/{real_name}"


# ------------------------------------------------------------------------------------------ build


def _randomize(module, seed: int) -> dict:
    """Deterministic weights with sane scales: norms at 1, biases at 0, fan-in scaled matrices."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, p in module.state_dict().items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "bias" and p.ndim == 1:
            t = torch.zeros(p.shape)
        elif (p.ndim == 1 and (leaf == "weight" or "norm" in name)) or leaf == "gamma":
            t = torch.ones(p.shape)
        else:
            fan_in = p[0].numel() if p.ndim > 1 else p.shape[-1]
            t = torch.randn(p.shape, generator=g) * fan_in**-0.5
        sd[name] = t.contiguous()
    return sd


# Wan variants ComfyUI's model_detection tells apart by their keys (img_emb: i2v; img_emb.emb_pos:
# first-last-frame; control_adapter: Fun-Camera; vace_patch_embedding: VACE; ref_conv: reference).
I2V_IN_DIM = 36  # 16 noise + 4 mask + 16 image latent channels
FLF_IMAGE_TOKENS = 514  # two CLIP-vision images of 257 tokens
VACE_IN_DIM = 96  # 32 frame latents + 64 mask channels
FUN_CAMERA_IN_DIM = 32  # 16 noise + 16 start-image latent channels (no mask), WAN21_Camera
WAN22_CHANNELS = 48  # Wan 2.2 5B: out_dim 48 makes model_detection pick WAN22_T2V (TI2V through the noise mask)
WAN_VARIANTS = {
    "t2v": ("WanModel", {"model_type": "t2v"}),
    "i2v": ("WanModel", {"model_type": "i2v", "in_dim": I2V_IN_DIM}),
    "flf2v": ("WanModel", {"model_type": "i2v", "in_dim": I2V_IN_DIM,
                           "flf_pos_embed_token_number": FLF_IMAGE_TOKENS}),
    "camera": ("CameraWanModel", {"model_type": "camera", "in_dim": FUN_CAMERA_IN_DIM}),
    # Wan 2.2 Fun-Camera: no CLIP-vision img_emb (model_detection: camera_2.2), mask channels in its input.
    "camera_2.2": ("CameraWanModel", {"model_type": "camera_2.2", "in_dim": I2V_IN_DIM}),
    "vace": ("VaceWanModel", {"vace_layers": 1, "vace_in_dim": VACE_IN_DIM}),
    "reference": ("WanModel", {"model_type": "t2v", "in_dim_ref_conv": 16}),
    "ti2v_5b": ("WanModel", {"model_type": "t2v", "in_dim": WAN22_CHANNELS, "out_dim": WAN22_CHANNELS}),
}


def tiny_wan_state_dict(variant: str = "t2v", seed: int = 0, dtype=None, dim: int = TINY_WAN_DIM) -> dict:
    """Weights of a tiny Wan DiT of the given variant, with the real per-variant key layout.

    ``dim``: model width; ComfyUI's loader gives it dim // 128 heads (512: four heads)."""
    import comfy.ldm.wan.model as wan
    import comfy.ops

    class_name, extra = WAN_VARIANTS[variant]
    ffn = TINY_WAN_FFN * dim // TINY_WAN_DIM
    config = dict(patch_size=(1, 2, 2), in_dim=16, dim=dim, ffn_dim=ffn, freq_dim=256,
                  text_dim=TEXT_DIM, out_dim=16, num_heads=dim // 128, num_layers=TINY_WAN_LAYERS,
                  qk_norm=True, cross_attn_norm=True, operations=comfy.ops.disable_weight_init)
    dit = getattr(wan, class_name)(**{**config, **extra})
    sd = _randomize(dit, seed=seed)
    return {k: v.to(dtype) for k, v in sd.items()} if dtype is not None else sd


def wan_dit_file(variant: str, seed: int, dtype_name: str, note: str):
    """A builder writing the tiny DiT of ``variant`` as the given dtype, like the real release files."""

    def build(path: Path) -> None:
        import torch
        from safetensors.torch import save_file

        sd = tiny_wan_state_dict(variant, seed=seed, dtype=getattr(torch, dtype_name))
        save_file(sd, str(path), metadata={"rtv_tiny": BUILDER_VERSION, "note": note})

    return build


def dit_file(state_dict, seed: int, dtype_name: str, note: str):
    """A builder writing ``state_dict(seed=, dtype=)`` (a tiny DiT of any family) as the given dtype."""

    def build(path: Path) -> None:
        import torch
        from safetensors.torch import save_file

        sd = state_dict(seed=seed, dtype=getattr(torch, dtype_name))
        save_file(sd, str(path), metadata={"rtv_tiny": BUILDER_VERSION, "note": note})

    return build


def build_wan21_vae(path: Path) -> None:
    from comfy.ldm.wan.vae import WanVAE
    from safetensors.torch import save_file

    # comfy.sd.VAE detects Wan 2.1 from decoder.middle.0.residual.0.gamma and reads the base dim from
    # decoder.head.0.gamma, so a tiny base dim is accepted; z_dim 16 and the 4x/8x scales are fixed.
    vae = WanVAE(dim=TINY_VAE_BASE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
    save_file(_randomize(vae, seed=1), str(path), metadata={"rtv_tiny": BUILDER_VERSION})


def build_wan22_vae(path: Path) -> None:
    """The Wan 2.2 VAE at its real size (705 M parameters, 1.4 GB in bfloat16), random weights.

    comfy.sd.VAE recognises it by ``decoder.upsamples.0.upsamples.0.residual.2.weight`` and always builds
    base width 160: no smaller file loads. On the test host's CPU it decodes ~1.5 frames a second at
    64 x 64 pixels, so the tests that use it keep their videos that small and short."""
    import torch
    from comfy.ldm.wan.vae2_2 import WanVAE
    from safetensors.torch import save_file

    vae = WanVAE(dim=160, z_dim=WAN22_CHANNELS, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                 temperal_downsample=[False, True, True], dropout=0.0)
    sd = {k: v.to(torch.bfloat16) for k, v in _randomize(vae, seed=10).items()}
    save_file(sd, str(path), metadata={"rtv_tiny": BUILDER_VERSION})


# ------------------------------------------------------------------- other video DiT families

# LTX-Video (ComfyUI's LTXVModel). Detection (model_detection, "adaln_single.emb.timestep_embedder...")
# reads only num_layers (counted transformer_blocks), attention_head_dim = rows of attn2.to_k // 32 and
# cross_attention_dim = columns of attn2.to_k; num_attention_heads stays at the class default 32 (no
# metadata config), and in_channels (128 latent channels) and caption_channels (4096, T5-XXL) are never
# read, so they must keep the class defaults. Inner width is 32 * head_dim; cross_attention_dim must equal
# it (caption_projection maps the text to the inner width before attn2).
LTXV_CHANNELS = 128
LTXV_HEADS = 32
TINY_LTXV_HEAD_DIM = 4  # inner width 128
TINY_LTXV_LAYERS = 2


def tiny_ltxv_state_dict(seed: int = 0, dtype=None, head_dim: int = TINY_LTXV_HEAD_DIM) -> dict:
    """Weights of a tiny LTX-Video DiT: 2 blocks of the fixed 32 heads, ``head_dim`` wide each."""
    import comfy.ldm.lightricks.model as ltxv
    import comfy.ops

    inner = LTXV_HEADS * head_dim
    dit = ltxv.LTXVModel(in_channels=LTXV_CHANNELS, cross_attention_dim=inner, attention_head_dim=head_dim,
                         num_attention_heads=LTXV_HEADS, caption_channels=TEXT_DIM, num_layers=TINY_LTXV_LAYERS,
                         operations=comfy.ops.disable_weight_init)
    sd = _randomize(dit, seed=seed)
    return {k: v.to(dtype) for k, v in sd.items()} if dtype is not None else sd


def _text(g, tokens: int, padded_tokens: int, dim: int = TEXT_DIM):
    """Random text embeddings and, with ``padded_tokens``, the encoders' 0/1 long mask (0: padding)."""
    import torch

    text = torch.randn(1, tokens + padded_tokens, dim, generator=g)
    mask = torch.ones(1, tokens + padded_tokens, dtype=torch.long)
    mask[:, tokens:] = 0
    return text, mask


def ltxv_conditioning(seed: int = 0, tokens: int = 8, padded_tokens: int = 0, frame_rate=None) -> list:
    """LTXV conditioning as ComfyUI's T5 encoder gives it: [1, T, 4096] and a long ``attention_mask``.

    The mask is required: LTXVModel.forward takes ``attention_mask`` positionally and ComfyUI passes only
    what the conditioning holds (the real encoder always returns one, padding to at least 128 tokens).
    ``frame_rate`` (default 25 in LTXV.extra_conds) scales the time axis of the rotary positions."""
    import torch

    text, mask = _text(torch.Generator().manual_seed(seed), tokens, padded_tokens)
    extra = {"attention_mask": mask}
    if frame_rate is not None:
        extra["frame_rate"] = frame_rate
    return [[text, extra]]


# HunyuanVideo 1.0 T2V (ComfyUI's HunyuanVideo). Detection ("txt_in.individual_token_refiner...") reads
# hidden_size (img_in rows), in_channels / patch_size (img_in.proj), out_channels (final_layer), the text
# width (txt_in.input_embedder columns), depth / depth_single_blocks (counted) and guidance_embed
# (guidance_in.* present); it fixes num_heads = hidden_size // 128 and axes_dim = [16, 56, 56] (head dim
# 128), mlp_ratio 4, theta 256, qkv_bias, vec_in_dim = 768 whenever vector_in.* exists, and the token
# refiner has 2 blocks. So the smallest width is 128 (one head); 256 gives two heads like the tiny Wan.
HUNYUAN_CHANNELS = 16
HUNYUAN_POOLED_DIM = 768  # CLIP-L pooled output, fed to vector_in
TINY_HUNYUAN_DIM = 256
TINY_HUNYUAN_DOUBLE = 2
TINY_HUNYUAN_SINGLE = 2


def tiny_hunyuan_video_state_dict(seed: int = 0, dtype=None, dim: int = TINY_HUNYUAN_DIM) -> dict:
    """Weights of a tiny HunyuanVideo 1.0 T2V DiT (guidance-distilled: has guidance_in), ComfyUI key names.

    ``dim``: model width, a multiple of 128; ComfyUI gives it dim // 128 heads of 128."""
    import comfy.ldm.hunyuan_video.model as hunyuan
    import comfy.ops

    dit = hunyuan.HunyuanVideo(
        in_channels=HUNYUAN_CHANNELS, out_channels=HUNYUAN_CHANNELS, vec_in_dim=HUNYUAN_POOLED_DIM,
        context_in_dim=TEXT_DIM, hidden_size=dim, mlp_ratio=4.0, num_heads=dim // 128,
        depth=TINY_HUNYUAN_DOUBLE, depth_single_blocks=TINY_HUNYUAN_SINGLE, axes_dim=[16, 56, 56], theta=256,
        patch_size=[1, 2, 2], qkv_bias=True, guidance_embed=True, byt5=False, meanflow=False,
        use_cond_type_embedding=False, vision_in_dim=None, operations=comfy.ops.disable_weight_init)
    sd = _randomize(dit, seed=seed)
    return {k: v.to(dtype) for k, v in sd.items()} if dtype is not None else sd


# HunyuanVideo 1.5: the same ComfyUI class with its 1.5 options, which detection reads from the keys: patch 1
# (img_in.proj), 65 input channels (32 noise + 32 image latent + 1 mask; concat_cond fills them), 32 out, no
# vector_in (no CLIP-L), no guidance_in, byt5_in (glyph text), vision_in (SigLIP, 1152 wide: HunyuanVideo15 is
# picked by vision_in_dim) and cond_type_embedding. Its text encoder is Qwen2.5-VL 7B (3584 wide).
HUNYUAN15_CHANNELS = 32
HUNYUAN15_TEXT_DIM = 3584
HUNYUAN15_VISION_DIM = 1152


def tiny_hunyuan_video15_state_dict(seed: int = 0, dtype=None, dim: int = TINY_HUNYUAN_DIM) -> dict:
    """Weights of a tiny HunyuanVideo 1.5 DiT (``TINY_HUNYUAN_DOUBLE`` double blocks, no single ones, like the
    real 54 + 0), ComfyUI key names."""
    import comfy.ldm.hunyuan_video.model as hunyuan
    import comfy.ops

    dit = hunyuan.HunyuanVideo(
        in_channels=2 * HUNYUAN15_CHANNELS + 1, out_channels=HUNYUAN15_CHANNELS, vec_in_dim=None,
        context_in_dim=HUNYUAN15_TEXT_DIM, hidden_size=dim, mlp_ratio=4.0, num_heads=dim // 128,
        depth=TINY_HUNYUAN_DOUBLE, depth_single_blocks=0, axes_dim=[16, 56, 56], theta=256, patch_size=[1, 1, 1],
        qkv_bias=True, guidance_embed=False, byt5=True, meanflow=False, use_cond_type_embedding=True,
        vision_in_dim=HUNYUAN15_VISION_DIM, operations=comfy.ops.disable_weight_init)
    sd = _randomize(dit, seed=seed)
    return {k: v.to(dtype) for k, v in sd.items()} if dtype is not None else sd


def hunyuan_video15_conditioning(seed: int = 0, tokens: int = 8, byt5_tokens: int = 0) -> list:
    """HunyuanVideo 1.5 conditioning as ComfyUI's Qwen2.5-VL encoder gives it: [1, T, 3584], no pooled output;
    with ``byt5_tokens`` also the glyph text (``conditioning_byt5small``, [1, N, 1472])."""
    import torch

    g = torch.Generator().manual_seed(seed)
    extra = {"pooled_output": None}
    text = torch.randn(1, tokens, HUNYUAN15_TEXT_DIM, generator=g)
    if byt5_tokens:
        extra["conditioning_byt5small"] = torch.randn(1, byt5_tokens, 1472, generator=g)
    return [[text, extra]]


def build_hunyuan_video15_vae(path: Path) -> None:
    """The HunyuanVideo 1.5 VAE at its real size (1.26 B parameters, 2.5 GB in bfloat16), random weights.

    comfy.sd.VAE recognises it by a 32-channel ``decoder.conv_in.conv.weight`` and builds fixed widths (128 to
    1024): no smaller file loads. On the test host's CPU it decodes 9 frames of 64 x 64 in ~12 s."""
    import torch
    from comfy.ldm.hunyuan_video.vae_refiner import Decoder, Encoder
    from safetensors.torch import save_file

    config = {"block_out_channels": [128, 256, 512, 1024, 1024], "in_channels": 3, "out_channels": 3,
              "num_res_blocks": 2, "ffactor_spatial": 16, "ffactor_temporal": 4, "downsample_match_channel": True,
              "upsample_match_channel": True, "z_channels": HUNYUAN15_CHANNELS}  # fmt: skip
    sd = {}
    for prefix, part, seed in (("encoder.", Encoder, 12), ("decoder.", Decoder, 13)):
        sd.update({prefix + k: v.to(torch.bfloat16) for k, v in _randomize(part(**config), seed=seed).items()})
    save_file(sd, str(path), metadata={"rtv_tiny": BUILDER_VERSION})


TINY_LTXV_VAE_CONFIG = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "blocks": [["res_x", 1], ["compress_all", 1], ["compress_all", 1], ["compress_all", 1], ["res_x", 1]],
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform",
    "use_quant_conv": False, "causal_decoder": False, "timestep_conditioning": False,
}
"""A small LTXV VAE with the real latent geometry (128 channels, 32x spatial, 8x temporal): ComfyUI takes an LTXV
VAE's layout from the file's ``config`` metadata, and needs ``decoder.up_blocks.0.res_blocks`` to detect it."""


def build_ltxv_checkpoint(path: Path) -> None:
    """A tiny LTX-Video single-file checkpoint (transformer + VAE, ``config`` metadata) for CheckpointLoaderSimple."""
    import json

    import torch
    from comfy.ldm.lightricks.vae.causal_video_autoencoder import VideoVAE
    from safetensors.torch import save_file

    sd = {f"model.diffusion_model.{k}": v for k, v in tiny_ltxv_state_dict(seed=8, dtype=torch.bfloat16).items()}
    vae = _randomize(VideoVAE(config=TINY_LTXV_VAE_CONFIG), seed=9)
    sd.update({f"vae.{k}": v.to(torch.bfloat16) for k, v in vae.items()})
    save_file(sd, str(path), metadata={"rtv_tiny": BUILDER_VERSION, "config": json.dumps({"vae": TINY_LTXV_VAE_CONFIG})})


def hunyuan_conditioning(seed: int = 0, tokens: int = 8, padded_tokens: int = 0) -> list:
    """HunyuanVideo conditioning: LLaVA-Llama text [1, T, 4096] and the CLIP-L ``pooled_output`` [1, 768].

    ``pooled_output`` is required (HunyuanVideo.encode_adm). With ``padded_tokens`` the last tokens are
    masked by a long ``attention_mask`` (the real encoder drops the mask when nothing is padded). The
    embedded guidance defaults to 6.0 in HunyuanVideo.extra_conds; add ``"guidance"`` to change it."""
    import torch

    g = torch.Generator().manual_seed(seed)
    text, mask = _text(g, tokens, padded_tokens)
    extra = {"pooled_output": torch.randn(1, HUNYUAN_POOLED_DIM, generator=g)}
    if padded_tokens:
        extra["attention_mask"] = mask
    return [[text, extra]]


TINY_MODELS = {
    ("diffusion_models", WAN21_T2V_1_3B): wan_dit_file("t2v", 0, "float16", "tiny random Wan 2.1 T2V for tests"),
    # control_adapter.* and img_emb.* make ComfyUI's model_detection pick WAN21_Camera.
    ("diffusion_models", WAN21_FUN_CAMERA_1_3B): wan_dit_file(
        "camera", 2, "bfloat16", "tiny random Wan 2.1 Fun-Camera for tests"),
    # Wan 2.2 A14B's experts load as Wan 2.1 14B T2V models: two tiny T2V DiTs of different weights.
    ("diffusion_models", WAN22_T2V_HIGH_NOISE_14B): wan_dit_file(
        "t2v", 16, "float16", "tiny random Wan 2.2 T2V A14B high-noise expert for tests"),
    ("diffusion_models", WAN22_T2V_LOW_NOISE_14B): wan_dit_file(
        "t2v", 17, "float16", "tiny random Wan 2.2 T2V A14B low-noise expert for tests"),
    # control_adapter.* without img_emb.*: WAN22_Camera.
    ("diffusion_models", WAN22_FUN_CAMERA_HIGH_NOISE): wan_dit_file(
        "camera_2.2", 15, "float16", "tiny random Wan 2.2 Fun-Camera for tests"),
    # img_emb.* and 36 input channels: WAN21 image-to-video.
    ("diffusion_models", WAN21_I2V_480P_14B): wan_dit_file("i2v", 3, "float16", "tiny random Wan 2.1 I2V for tests"),
    # Self-Forcing / CausVid distills are plain Wan 2.1 T2V 1.3B weights run chunk-wise.
    ("diffusion_models", WAN21_T2V_1_3B_SELF_FORCING): wan_dit_file(
        "t2v", 4, "float16", "tiny random Wan 2.1 T2V standing in for Self-Forcing DMD 1.3B"),
    ("vae", WAN21_VAE): build_wan21_vae,
    # in_dim = out_dim = 48: ComfyUI's WAN22_T2V (Wan 2.2 TI2V 5B), with the full-size Wan 2.2 VAE.
    ("diffusion_models", WAN22_TI2V_5B): wan_dit_file(
        "ti2v_5b", 11, "float16", "tiny random Wan 2.2 TI2V 5B for tests"),
    ("vae", WAN22_VAE): build_wan22_vae,
    # img_emb.emb_pos (two CLIP-vision images): WAN21 first-last-frame-to-video.
    ("diffusion_models", WAN21_FLF2V_720P_14B): wan_dit_file(
        "flf2v", 5, "float16", "tiny random Wan 2.1 FLF2V for tests"),
    ("diffusion_models", HUNYUAN_VIDEO_T2V_720P): dit_file(
        tiny_hunyuan_video_state_dict, 6, "bfloat16", "tiny random HunyuanVideo T2V for tests"),
    ("diffusion_models", LTXV_TRANSFORMER): dit_file(
        tiny_ltxv_state_dict, 7, "bfloat16", "tiny random LTX-Video transformer for tests"),
    # ComfyUI 0.3.75 builds the HunyuanVideo VAE's layout at a fixed full size (128-512 channels; only a full-size
    # file loads, far too slow to decode on the test host's CPU), so the tiny
    # host decodes HunyuanVideo latents with the tiny Wan 2.1 VAE: same latent geometry (16 channels, 8x
    # spatial, 4x causal temporal). The shipped workflow's graph runs; its decoder is a stand-in.
    ("vae", HUNYUAN_VIDEO_VAE): build_wan21_vae,
    ("checkpoints", LTXV_2B_CHECKPOINT): build_ltxv_checkpoint,
    ("diffusion_models", HUNYUAN_VIDEO15_720P): dit_file(
        tiny_hunyuan_video15_state_dict, 14, "float16", "tiny random HunyuanVideo 1.5 T2V for tests"),
    ("vae", HUNYUAN_VIDEO15_VAE): build_hunyuan_video15_vae,
}


def _is_current(path: Path) -> bool:
    if not path.is_file():
        return False
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return (f.metadata() or {}).get("rtv_tiny") == BUILDER_VERSION


def build_all(models_dir: Path) -> list[Path]:
    built = []
    for (folder, real_name), builder in TINY_MODELS.items():
        path = models_dir / folder / tiny_name(real_name)
        if _is_current(path):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        builder(tmp)
        os.replace(tmp, path)
        built.append(path)
    return built


# ---------------------------------------------------------------------------- workflow mapping


def conditioning_family(clip_type: str | None) -> str:
    """The ``RTVTest_TextConditioning`` family for a text-encoder loader's ``type``."""
    return {"hunyuan_video": "hunyuan_video", "hunyuan_video_15": "hunyuan_video_15", "ltxv": "ltxv"}.get(
        clip_type or "", "wan")


FULL_SIZE_VAES = (WAN22_VAE, HUNYUAN_VIDEO15_VAE)
"""VAEs that ComfyUI only builds at their real size (``build_wan22_vae``, ``build_hunyuan_video15_vae``): slow
to decode on the test host's CPU."""
FULL_SIZE_VAE_TINY_SIZES = {"width": 64, "height": 64, "length": 9, "total_frames": 13, "chunk_frames": 9,
                            "overlap_frames": 5}  # fmt: skip
"""Sizes of a graph that loads a full-size VAE on the tiny host: small and short (two chunks when streaming)."""


def loads_full_size_vae(api_prompt: dict) -> bool:
    return any(str(n["inputs"].get("vae_name", "")).endswith(FULL_SIZE_VAES) for n in api_prompt.values())


def for_tiny_host(api_prompt: dict, width: int = TINY_WIDTH, height: int = TINY_HEIGHT) -> dict:
    """Map an API-format prompt of a shipped workflow onto the tiny models.

    Model names get the ``rtv_tiny/`` folder, every CLIPTextEncode fed by a text-encoder loader becomes
    the test-only ``RTVTest_TextConditioning`` of that loader's model family (UMT5-XXL, LLaVA and T5
    cannot be loaded here), and latent sizes shrink to a CPU-friendly resolution with the same frame count
    (graphs with a full-size VAE: ``FULL_SIZE_VAE_TINY_SIZES``, frames too).
    """
    prompt = copy.deepcopy(api_prompt)
    full_size_vae = loads_full_size_vae(prompt)
    if full_size_vae:
        width, height = FULL_SIZE_VAE_TINY_SIZES["width"], FULL_SIZE_VAE_TINY_SIZES["height"]
    for node in prompt.values():
        inputs = node["inputs"]
        for key in ("unet_name", "vae_name", "ckpt_name"):
            name = inputs.get(key)
            if isinstance(name, str) and not name.startswith((TINY_FOLDER + "/", SHIPPED_MODEL_PREFIX)):
                inputs[key] = tiny_name(inputs[key])
        if "width" in inputs and "height" in inputs and node["class_type"] != "CLIPTextEncode":
            if isinstance(inputs["width"], int) and isinstance(inputs["height"], int):
                inputs["width"], inputs["height"] = width, height
        for key in ("length", "total_frames", "chunk_frames", "overlap_frames"):
            if full_size_vae and isinstance(inputs.get(key), int):
                inputs[key] = FULL_SIZE_VAE_TINY_SIZES[key]
    clip_loaders = {nid: conditioning_family(n["inputs"].get("type")) for nid, n in prompt.items()
                    if n["class_type"] in ("CLIPLoader", "DualCLIPLoader")}  # fmt: skip
    for node in prompt.values():
        if node["class_type"] == "CLIPTextEncode" and isinstance(node["inputs"].get("clip"), list):
            if node["inputs"]["clip"][0] in clip_loaders:
                family = clip_loaders[node["inputs"]["clip"][0]]
                node["class_type"] = "RTVTest_TextConditioning"
                node["inputs"] = {"text": node["inputs"]["text"], "tokens": TEXT_TOKENS, "family": family}
    for nid in clip_loaders:
        del prompt[nid]
    return prompt


def provide_input_images(api_prompt: dict, input_dir: Path, comfy_dir: Path | None = None) -> list[Path]:
    """Put every image a ``LoadImage`` of the prompt names into the test server's ``input_dir``:
    ComfyUI's own copy when it ships one (``input/example.png``), else a generated test picture."""
    comfy_dir = Path(comfy_dir or os.environ.get("COMFYUI_PATH") or REPO / ".host" / "ComfyUI")
    written = []
    for node in api_prompt.values():
        name = node["inputs"].get("image") if node["class_type"] == "LoadImage" else None
        if not isinstance(name, str) or (Path(input_dir) / name).is_file():
            continue
        target = Path(input_dir) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shipped = comfy_dir / "input" / name
        if shipped.is_file():
            shutil.copy(shipped, target)
        else:
            _write_test_picture(target)
        written.append(target)
    return written


def _write_test_picture(path: Path, width: int = 2 * TINY_WIDTH, height: int = 2 * TINY_HEIGHT) -> None:
    import torch
    from PIL import Image

    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    rgb = torch.stack([x, y, 0.5 + 0.5 * torch.sin(12 * x * y)], dim=-1)
    Image.fromarray((rgb * 255).round().byte().numpy()).save(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=str(REPO / ".host" / "models"))
    ap.add_argument("--comfy-dir", default=os.environ.get("COMFYUI_PATH") or str(REPO / ".host" / "ComfyUI"))
    args = ap.parse_args()
    sys.path.insert(0, args.comfy_dir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # before comfy.model_management is imported: CPU-only torch
    built = build_all(Path(args.models_dir))
    print(json.dumps({"built": [str(p) for p in built], "models_dir": args.models_dir}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
