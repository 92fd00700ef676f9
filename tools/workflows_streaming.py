"""Shipped workflows of the streaming sampler (see tools/make_workflows.py)."""

from make_workflows import WAN_MODELS_NOTE
from tiny_models import UMT5_XXL, WAN21_I2V_480P_14B, WAN21_T2V_1_3B, WAN21_VAE


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


WORKFLOWS = {
    "wan21_t2v_long_streaming.json": wan_t2v_long_streaming,
    "wan21_i2v_long_streaming.json": wan_i2v_long_streaming,
}
