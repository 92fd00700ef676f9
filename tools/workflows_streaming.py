"""Shipped workflows of the streaming sampler (see tools/make_workflows.py)."""

from make_workflows import WAN_MODELS_NOTE, monarch_attention
from tiny_models import (
    UMT5_XXL,
    WAN21_I2V_480P_14B,
    WAN21_T2V_1_3B,
    WAN21_VAE,
    WAN22_T2V_HIGH_NOISE_14B,
    WAN22_T2V_LOW_NOISE_14B,
)


def wan_t2v_long_streaming() -> tuple[dict, list[str]]:
    """A 241-frame Wan 2.1 T2V video in 81-frame chunks with Monarch attention and anchor memory."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN21_T2V_1_3B, "weight_dtype": "default"}},
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8.0}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["3", 0], "text": "a hot air balloon drifts over green hills and a winding river, aerial shot"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["3", 0], "text": "blurry, low quality, static, distorted, watermark, text"}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
        "7": {"class_type": "RTV_StreamingSampler", "inputs": {
            "model": ["2", 0], "positive": ["4", 0], "negative": ["5", 0], "vae": ["6", 0], "width": 832,
            "height": 480, "total_frames": 241, "chunk_frames": 81, "overlap_frames": 17, "seed": 21, "steps": 30,
            "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple", "overlap_mode": "pinned_latents",
            "anchor_strength": 0.5, "drift_correction": 0.3, "chunk_save_prefix": "RealtimeVideo/stream"}},
        "8": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["7", 0], "filename_prefix": "RealtimeVideo/wan_t2v_long", "fps": 16.0, "lossless": False,
            "quality": 90, "method": "default"}},
    }
    notes = [WAN_MODELS_NOTE + "\n\nStreaming Sampler (RTV): 241 frames as 3 chunks of 81 overlapping by 17. "
             "Each finished chunk is saved under output/RealtimeVideo/ as it completes."]
    return prompt, notes


def wan_i2v_long_streaming() -> tuple[dict, list[str]]:
    """A 161-frame Wan 2.1 I2V video from one picture: each chunk starts from the previous one's last frames."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN21_I2V_480P_14B, "weight_dtype": "default"}},
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 5.0}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["3", 0], "text": "the camera slowly pushes in while leaves drift across the scene"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["3", 0], "text": "blurry, low quality, static, distorted, watermark, text"}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
        "9": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "7": {"class_type": "RTV_StreamingSampler", "inputs": {
            "model": ["2", 0], "positive": ["4", 0], "negative": ["5", 0], "vae": ["6", 0], "width": 832,
            "height": 480, "total_frames": 161, "chunk_frames": 81, "overlap_frames": 17, "seed": 5, "steps": 30,
            "cfg": 5.0, "sampler_name": "uni_pc", "scheduler": "simple", "overlap_mode": "i2v_start_frames",
            "anchor_strength": 0.0, "drift_correction": 0.3, "start_image": ["9", 0],
            "chunk_save_prefix": "RealtimeVideo/stream_i2v"}},
        "8": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["7", 0], "filename_prefix": "RealtimeVideo/wan_i2v_long", "fps": 16.0, "lossless": False,
            "quality": 90, "method": "default"}},
    }
    notes = [WAN_MODELS_NOTE.replace(WAN21_T2V_1_3B, WAN21_I2V_480P_14B)
             + "\n\nStreaming Sampler (RTV), i2v_start_frames: the picture starts chunk 0, the last 17 frames of each "
             "chunk start the next. For full quality add CLIPVisionLoader (clip_vision_h) + CLIPVisionEncode of the "
             "picture into the sampler's clip_vision_output input."]
    return prompt, notes


def wan22_a14b_long_streaming() -> tuple[dict, list[str]]:
    """Wan 2.2 T2V A14B, 241 frames at 720p in 81-frame chunks: the high-noise expert runs steps 0-9 of each chunk,
    the low-noise expert steps 10-19 (ComfyUI's Wan 2.2 template split), Monarch attention on both."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN22_T2V_HIGH_NOISE_14B, "weight_dtype": "default"}},
        "2": monarch_attention(["1", 0]),
        "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 8.0}},
        "4": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN22_T2V_LOW_NOISE_14B, "weight_dtype": "default"}},
        "5": monarch_attention(["4", 0]),
        "6": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["5", 0], "shift": 8.0}},
        "7": {"class_type": "CLIPLoader", "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["7", 0], "text": "a hot air balloon drifts over green hills and a winding river, aerial shot"}},
        "9": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["7", 0], "text": "blurry, low quality, static, distorted, watermark, text"}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
        "11": {"class_type": "RTV_StreamingSampler", "inputs": {
            "model": ["3", 0], "positive": ["8", 0], "negative": ["9", 0], "vae": ["10", 0], "width": 1280,
            "height": 720, "total_frames": 241, "chunk_frames": 81, "overlap_frames": 17, "seed": 21, "steps": 20,
            "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple", "overlap_mode": "pinned_latents",
            "anchor_strength": 0.5, "drift_correction": 0.3, "chunk_save_prefix": "RealtimeVideo/wan22_a14b_stream",
            "model_low_noise": ["6", 0], "low_noise_start_step": 10}},
        "12": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["11", 0], "filename_prefix": "RealtimeVideo/wan22_a14b_long", "fps": 16.0, "lossless": False,
            "quality": 90, "method": "default"}},
    }
    note = ("Models (ComfyUI's Wan 2.2 repackaged release, Comfy-Org/Wan_2.2_ComfyUI_Repackaged):\n"
            f"- models/diffusion_models/{WAN22_T2V_HIGH_NOISE_14B} and {WAN22_T2V_LOW_NOISE_14B}\n"
            f"- models/text_encoders/{UMT5_XXL}\n"
            f"- models/vae/{WAN21_VAE} (A14B uses the Wan 2.1 VAE)\n\n"
            "Streaming Sampler (RTV) with both experts: in every chunk the high-noise model runs steps 0-9 and the "
            "low-noise model steps 10-19, exactly as two KSamplerAdvanced nodes would; the pinned overlap stays "
            "re-noised to each step's sigma across the switch. Monarch Attention (RTV) patches each expert.")
    return prompt, [note]


WORKFLOWS = {
    "wan21_t2v_long_streaming.json": wan_t2v_long_streaming,
    "wan21_i2v_long_streaming.json": wan_i2v_long_streaming,
    "wan22_t2v_a14b_long_streaming.json": wan22_a14b_long_streaming,
}
