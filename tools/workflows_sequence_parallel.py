"""Shipped workflow of the sequence-parallel node (see tools/make_workflows.py)."""

from make_workflows import WAN_MODELS_NOTE
from tiny_models import UMT5_XXL, WAN21_T2V_1_3B, WAN21_VAE


def wan_t2v_sequence_parallel() -> tuple[dict, list[str]]:
    """Wan 2.1 T2V 1.3B split over every visible GPU, then ComfyUI's own KSampler."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN21_T2V_1_3B, "weight_dtype": "default"}},
        "2": {"class_type": "RTV_SequenceParallel", "inputs": {"model": ["1", 0], "ranks": 0, "backend": "auto"}},
        "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 8.0}},
        "4": {"class_type": "CLIPLoader", "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "a paper boat drifts down a rain-soaked street, reflections of neon signs"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "blurry, low quality, static, distorted, watermark, text"}},
        "7": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {
            "width": 832, "height": 480, "length": 81, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {
            "model": ["3", 0], "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["7", 0],
            "seed": 11, "steps": 20, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0}},
        "9": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["9", 0]}},
        "11": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["10", 0], "filename_prefix": "RealtimeVideo/wan_t2v_sequence_parallel", "fps": 16.0,
            "lossless": False, "quality": 90, "method": "default"}},
    }  # fmt: skip
    notes = [
        WAN_MODELS_NOTE + "\n\nSequence Parallel (RTV) splits each frame's tokens over every visible GPU "
        "(ranks 0; Wan 1.3B has 12 heads, so 2, 3, 4, 6 or 12 GPUs are used). On one GPU it does nothing. "
        "Put Monarch Attention (RTV) or LoRAs before it as usual."
    ]
    return prompt, notes


WORKFLOWS = {"wan21_t2v_sequence_parallel.json": wan_t2v_sequence_parallel}
