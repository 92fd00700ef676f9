"""Shipped workflows of Monarch attention on the other video families (see tools/make_workflows.py)."""

from make_workflows import monarch_attention
from tiny_models import (
    EXAMPLE_IMAGE,
    HUNYUAN_CLIP_L,
    HUNYUAN_LLAVA,
    HUNYUAN_VIDEO15_720P,
    HUNYUAN_VIDEO15_BYT5,
    HUNYUAN_VIDEO15_QWEN,
    HUNYUAN_VIDEO15_VAE,
    HUNYUAN_VIDEO_T2V_720P,
    HUNYUAN_VIDEO_VAE,
    LTXV_2B_CHECKPOINT,
    LTXV_T5_XXL,
    UMT5_XXL,
    WAN22_TI2V_5B,
    WAN22_VAE,
)

HUNYUAN_NOTE = (
    "Models (ComfyUI's HunyuanVideo repackaged release, Comfy-Org/HunyuanVideo_repackaged):\n"
    f"- models/diffusion_models/{HUNYUAN_VIDEO_T2V_720P}\n"
    f"- models/text_encoders/{HUNYUAN_CLIP_L} and {HUNYUAN_LLAVA}\n"
    f"- models/vae/{HUNYUAN_VIDEO_VAE}\n\n"
    "Monarch Attention (RTV) replaces the video part of HunyuanVideo's joint attention; the text tokens stay "
    "exact (video queries attend them exactly, text queries attend everything). Block numbers for "
    "dense_blocks: double blocks 0-19, then single blocks 20-59."
)


def to_long_video(prompt: dict, replaced: tuple, save: str, stream: str, sampler_inputs: dict, name: str) -> dict:
    """Turn a one-clip workflow into a long one: drop the nodes the streaming sampler replaces (latent, sampler,
    decode), add RTV_StreamingSampler as node ``stream`` (pinned overlaps, no anchor; finished chunks saved as
    RealtimeVideo/<name>_stream) and point the save node ``save`` at it (RealtimeVideo/<name>_long)."""
    for node in replaced:
        del prompt[node]
    prompt[stream] = {"class_type": "RTV_StreamingSampler", "inputs": {
        "overlap_mode": "pinned_latents", "anchor_strength": 0.0, "drift_correction": 0.0, **sampler_inputs,
        "chunk_save_prefix": f"RealtimeVideo/{name}_stream"}}
    prompt[save]["inputs"]["images"] = [stream, 0]
    prompt[save]["inputs"]["filename_prefix"] = f"RealtimeVideo/{name}_long"
    return prompt


def hunyuan_t2v_monarch() -> tuple[dict, list[str]]:
    """HunyuanVideo T2V with Monarch attention patched in; guidance distilled (cfg 1, FluxGuidance 6)."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": HUNYUAN_VIDEO_T2V_720P, "weight_dtype": "default"}},
        "2": monarch_attention(["1", 0]),
        "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 7.0}},
        "4": {"class_type": "DualCLIPLoader", "inputs": {
            "clip_name1": HUNYUAN_CLIP_L, "clip_name2": HUNYUAN_LLAVA, "type": "hunyuan_video", "device": "default"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "a red fox runs through fresh snow in a birch forest, morning light"}},
        "6": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["5", 0], "guidance": 6.0}},
        "7": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["5", 0]}},
        "8": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {
            "width": 848, "height": 480, "length": 73, "batch_size": 1}},
        "9": {"class_type": "KSampler", "inputs": {
            "model": ["3", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["8", 0],
            "seed": 7, "steps": 20, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": HUNYUAN_VIDEO_VAE}},
        "11": {"class_type": "VAEDecodeTiled", "inputs": {
            "samples": ["9", 0], "vae": ["10", 0], "tile_size": 256, "overlap": 64, "temporal_size": 64,
            "temporal_overlap": 8}},
        "12": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["11", 0], "filename_prefix": "RealtimeVideo/hunyuan_t2v_monarch", "fps": 24.0,
            "lossless": False, "quality": 90, "method": "default"}},
    }
    return prompt, [HUNYUAN_NOTE]


def hunyuan_long_streaming() -> tuple[dict, list[str]]:
    """HunyuanVideo, 185 frames in chunks of 65 overlapping by 9, Monarch attention patched in."""
    prompt = to_long_video(hunyuan_t2v_monarch()[0], ("8", "9", "11"), "12", "13", {
        "model": ["3", 0], "positive": ["6", 0], "negative": ["7", 0], "vae": ["10", 0], "width": 848, "height": 480,
        "total_frames": 185, "chunk_frames": 65, "overlap_frames": 9, "seed": 7, "steps": 20, "cfg": 1.0,
        "sampler_name": "euler", "scheduler": "simple"}, "hunyuan")
    note = (HUNYUAN_NOTE + "\n\nStreaming Sampler (RTV): chunks of 65 frames overlapping by 9 (their latents are "
            "held fixed); each chunk is decoded as it finishes and saved under output/RealtimeVideo/.")
    return prompt, [note]


LTXV_NOTE = (
    "Models (Lightricks/LTX-Video, as ComfyUI's own LTX-Video template loads them):\n"
    f"- models/checkpoints/{LTXV_2B_CHECKPOINT} (transformer and VAE in one file)\n"
    f"- models/text_encoders/{LTXV_T5_XXL}\n\n"
    "Monarch Attention (RTV) replaces LTX-Video's self-attention (attn1 of every block); guide frames added by "
    "LTXVAddGuide / LTXVImgToVideo stay exact. LTX-Video's frames are 32 px per token, so a frame has few tokens "
    "and Monarch gains less than on Wan or HunyuanVideo (README: 1.9x cuDNN at 704p x 257 frames, 13B)."
)


def ltxv_t2v_monarch() -> tuple[dict, list[str]]:
    """LTX-Video 2B T2V with Monarch attention patched in (ComfyUI's LTXV template, one node added)."""
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": LTXV_2B_CHECKPOINT}},
        "2": monarch_attention(["1", 0]),
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": LTXV_T5_XXL, "type": "ltxv", "device": "default"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["3", 0], "text": "a red fox runs through fresh snow in a birch forest, morning light"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["3", 0], "text": "low quality, worst quality, deformed, distorted, disfigured, motion smear"}},
        "6": {"class_type": "LTXVConditioning", "inputs": {"positive": ["4", 0], "negative": ["5", 0], "frame_rate": 25.0}},
        "7": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 768, "height": 512, "length": 97, "batch_size": 1}},
        "8": {"class_type": "LTXVScheduler", "inputs": {
            "steps": 30, "max_shift": 2.05, "base_shift": 0.95, "stretch": True, "terminal": 0.1, "latent": ["7", 0]}},
        "9": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "10": {"class_type": "SamplerCustom", "inputs": {
            "model": ["2", 0], "add_noise": True, "noise_seed": 7, "cfg": 3.0, "positive": ["6", 0],
            "negative": ["6", 1], "sampler": ["9", 0], "sigmas": ["8", 0], "latent_image": ["7", 0]}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}},
        "12": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["11", 0], "filename_prefix": "RealtimeVideo/ltxv_t2v_monarch", "fps": 25.0,
            "lossless": False, "quality": 90, "method": "default"}},
    }
    return prompt, [LTXV_NOTE]


def ltxv_long_streaming() -> tuple[dict, list[str]]:
    """LTX-Video 2B, 257 frames in chunks of 97 overlapping by 17 (8a+1 / 8m+1), Monarch attention patched in."""
    # latent, scheduler, sampler and decode are the streaming sampler's job
    prompt = to_long_video(ltxv_t2v_monarch()[0], ("7", "8", "9", "10", "11"), "12", "14", {
        "model": ["13", 0], "positive": ["6", 0], "negative": ["6", 1], "vae": ["1", 2], "width": 768, "height": 512,
        "total_frames": 257, "chunk_frames": 97, "overlap_frames": 17, "seed": 7, "steps": 30, "cfg": 3.0,
        "sampler_name": "euler", "scheduler": "simple"}, "ltxv")
    prompt["13"] = {"class_type": "ModelSamplingLTXV", "inputs": {"model": ["2", 0], "max_shift": 2.05, "base_shift": 0.95}}
    note = (LTXV_NOTE + "\n\nStreaming Sampler (RTV): chunks of 97 frames overlapping by 17 (LTX-Video's VAE holds 8 "
            "frames per latent, so lengths are 8a+1); ModelSamplingLTXV sets the schedule's shift as LTX-Video's "
            "own scheduler would.")
    return prompt, [note]


HUNYUAN15_NOTE = (
    "Models (ComfyUI's HunyuanVideo 1.5 repackaged release, Comfy-Org/HunyuanVideo_1.5_repackaged):\n"
    f"- models/diffusion_models/{HUNYUAN_VIDEO15_720P}\n"
    f"- models/text_encoders/{HUNYUAN_VIDEO15_QWEN} and {HUNYUAN_VIDEO15_BYT5}\n"
    f"- models/vae/{HUNYUAN_VIDEO15_VAE}\n\n"
    "Monarch Attention (RTV) replaces the video part of HunyuanVideo 1.5's joint attention (54 double blocks); "
    "the text, glyph and vision tokens stay exact. Frames are 16 px per token (16x VAE, patch 1): 1280 x 720 x "
    "121 frames is 111600 video tokens, where Monarch saves the most (README: 3.3x a denoising step)."
)


def hunyuan15_t2v_monarch() -> tuple[dict, list[str]]:
    """HunyuanVideo 1.5 T2V 720p, 121 frames, with Monarch attention patched in."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": HUNYUAN_VIDEO15_720P, "weight_dtype": "default"}},
        "2": monarch_attention(["1", 0]),
        "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 7.0}},
        "4": {"class_type": "DualCLIPLoader", "inputs": {
            "clip_name1": HUNYUAN_VIDEO15_QWEN, "clip_name2": HUNYUAN_VIDEO15_BYT5, "type": "hunyuan_video_15",
            "device": "default"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "a red fox runs through fresh snow in a birch forest, morning light"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "blurry, low quality, static, distorted, watermark, text"}},
        "7": {"class_type": "EmptyHunyuanVideo15Latent", "inputs": {
            "width": 1280, "height": 720, "length": 121, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {
            "model": ["3", 0], "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["7", 0],
            "seed": 7, "steps": 20, "cfg": 6.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "9": {"class_type": "VAELoader", "inputs": {"vae_name": HUNYUAN_VIDEO15_VAE}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["9", 0]}},
        "11": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["10", 0], "filename_prefix": "RealtimeVideo/hunyuan15_t2v_monarch", "fps": 24.0,
            "lossless": False, "quality": 90, "method": "default"}},
    }
    return prompt, [HUNYUAN15_NOTE]


def hunyuan15_long_streaming() -> tuple[dict, list[str]]:
    """HunyuanVideo 1.5, 361 frames in chunks of 121 overlapping by 17, Monarch attention patched in."""
    prompt = to_long_video(hunyuan15_t2v_monarch()[0], ("7", "8", "10"), "11", "12", {
        "model": ["3", 0], "positive": ["5", 0], "negative": ["6", 0], "vae": ["9", 0], "width": 1280, "height": 720,
        "total_frames": 361, "chunk_frames": 121, "overlap_frames": 17, "seed": 7, "steps": 20, "cfg": 6.0,
        "sampler_name": "euler", "scheduler": "simple"}, "hunyuan15")
    note = (HUNYUAN15_NOTE + "\n\nStreaming Sampler (RTV): chunks of 121 frames overlapping by 17 (their latents "
            "are held fixed); each chunk is decoded as it finishes and saved under output/RealtimeVideo/.")
    return prompt, [note]


WAN22_5B_NOTE = (
    "Models (ComfyUI's Wan 2.2 repackaged release, Comfy-Org/Wan_2.2_ComfyUI_Repackaged):\n"
    f"- models/diffusion_models/{WAN22_TI2V_5B}\n"
    f"- models/text_encoders/{UMT5_XXL}\n"
    f"- models/vae/{WAN22_VAE}\n\n"
    "Wan 2.2 TI2V 5B makes text-to-video, or image-to-video from the start image (its first latent frame is held "
    "fixed). Its VAE compresses 16x, so frames are 32 px per token: 1280 x 704 is 40 x 22 tokens a frame. "
    "Delete the Load Image node for text-to-video."
)


def wan22_ti2v_5b_monarch() -> tuple[dict, list[str]]:
    """Wan 2.2 TI2V 5B, 1280 x 704 x 121 frames from a start image, with Monarch attention patched in."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN22_TI2V_5B, "weight_dtype": "default"}},
        "2": monarch_attention(["1", 0]),
        "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 8.0}},
        "4": {"class_type": "CLIPLoader", "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "the camera slowly pushes in as a red fox trots through fresh snow, morning light"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "blurry, low quality, static, distorted, watermark, text"}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": WAN22_VAE}},
        "8": {"class_type": "LoadImage", "inputs": {"image": EXAMPLE_IMAGE}},
        "9": {"class_type": "Wan22ImageToVideoLatent", "inputs": {
            "vae": ["7", 0], "width": 1280, "height": 704, "length": 121, "batch_size": 1, "start_image": ["8", 0]}},
        "10": {"class_type": "KSampler", "inputs": {
            "model": ["3", 0], "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["9", 0],
            "seed": 7, "steps": 20, "cfg": 5.0, "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["7", 0]}},
        "12": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["11", 0], "filename_prefix": "RealtimeVideo/wan22_5b_monarch", "fps": 24.0,
            "lossless": False, "quality": 90, "method": "default"}},
    }
    return prompt, [WAN22_5B_NOTE]


def wan22_ti2v_5b_long_streaming() -> tuple[dict, list[str]]:
    """Wan 2.2 TI2V 5B, 361 frames (15 s at 24 fps) in chunks of 121 overlapping by 17, from a start image."""
    prompt = to_long_video(wan22_ti2v_5b_monarch()[0], ("9", "10", "11"), "12", "13", {
        "model": ["3", 0], "positive": ["5", 0], "negative": ["6", 0], "vae": ["7", 0], "width": 1280, "height": 704,
        "total_frames": 361, "chunk_frames": 121, "overlap_frames": 17, "seed": 7, "steps": 20, "cfg": 5.0,
        "sampler_name": "uni_pc", "scheduler": "simple", "start_image": ["8", 0]}, "wan22_5b")
    note = (WAN22_5B_NOTE + "\n\nStreaming Sampler (RTV): chunks of 121 frames (the 5B model's trained length) "
            "overlapping by 17; the start image is chunk 0's first frame, later chunks continue from the overlap. "
            "Each chunk is decoded as it finishes and saved under output/RealtimeVideo/.")
    return prompt, [note]


WORKFLOWS = {
    "hunyuan_video15_t2v_monarch_attention.json": hunyuan15_t2v_monarch,
    "hunyuan_video15_long_streaming.json": hunyuan15_long_streaming,
    "wan22_ti2v_5b_monarch_attention.json": wan22_ti2v_5b_monarch,
    "wan22_ti2v_5b_long_streaming.json": wan22_ti2v_5b_long_streaming,
    "hunyuan_video_t2v_monarch_attention.json": hunyuan_t2v_monarch,
    "ltxv_t2v_monarch_attention.json": ltxv_t2v_monarch,
    "hunyuan_video_long_streaming.json": hunyuan_long_streaming,
    "ltxv_long_streaming.json": ltxv_long_streaming,
}
