"""Shipped workflows of temporal alignment and metrics (see tools/make_workflows.py)."""

from make_workflows import WAN_MODELS_NOTE
from tiny_models import UMT5_XXL, WAN21_T2V_1_3B, WAN21_VAE

CHUNK, OVERLAP = 81, 17


def wan_t2v_streaming_temporal_align() -> tuple[dict, list[str]]:
    """Two 81-frame chunks from the streaming sampler, seam aligned, measured before and after."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN21_T2V_1_3B, "weight_dtype": "default"}},
        "2": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 8.0}},
        "3": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"},
        },
        "4": {
            "class_type": "CLIPTextEncode",
            "inputs": {
                "clip": ["3", 0],
                "text": "a sailboat glides along a rocky coastline at sunset, slow tracking shot",
            },
        },
        "5": {
            "class_type": "CLIPTextEncode",
            "inputs": {"clip": ["3", 0], "text": "blurry, low quality, static, distorted, watermark, text"},
        },
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
        "7": {
            "class_type": "RTV_StreamingSampler",
            "inputs": {
                "model": ["2", 0],
                "positive": ["4", 0],
                "negative": ["5", 0],
                "vae": ["6", 0],
                "width": 832,
                "height": 480,
                "total_frames": 145,
                "chunk_frames": CHUNK,
                "overlap_frames": OVERLAP,
                "seed": 3,
                "steps": 30,
                "cfg": 6.0,
                "sampler_name": "uni_pc",
                "scheduler": "simple",
                "overlap_mode": "pinned_latents",
                "anchor_strength": 0.0,
                "drift_correction": 0.0,
                "chunk_save_prefix": "RealtimeVideo/stream",
            },
        },
        "8": {
            "class_type": "RTV_TemporalAlign",
            "inputs": {
                "images": ["7", 0],
                "chunk_frames": CHUNK,
                "overlap_frames": OVERLAP,
                "method": "flow_blend",
                "color_correction": "mean_std",
                "strength": 1.0,
                "layout": "joined",
                "correction_frames": 24,
                "curve": "ease_in_out",
                "flow_max_side": 512,
            },
        },
        "9": {
            "class_type": "RTV_TemporalMetrics",
            "inputs": {
                "images": ["7", 0],
                "chunk_frames": CHUNK,
                "overlap_frames": OVERLAP,
                "max_side": 512,
                "pairs_per_batch": 8,
            },
        },
        "10": {
            "class_type": "RTV_TemporalMetrics",
            "inputs": {
                "images": ["8", 0],
                "chunk_frames": CHUNK,
                "overlap_frames": OVERLAP,
                "max_side": 512,
                "pairs_per_batch": 8,
            },
        },
        "11": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["8", 0],
                "filename_prefix": "RealtimeVideo/wan_t2v_aligned",
                "fps": 16.0,
                "lossless": False,
                "quality": 90,
                "method": "default",
            },
        },
    }
    notes = [
        WAN_MODELS_NOTE + "\n\nStreaming Sampler (RTV) makes 145 frames as 2 chunks of 81 overlapping by 17; "
        "Temporal Align (RTV) smooths the seam at frame 81 (colour matched, then released over 24 frames; a "
        "positional jump pulled back). The two Temporal Metrics (RTV) nodes show the seam before and after: "
        "compare seam_warp_error_ratio_max and the seams' flicker. Keep chunk_frames / overlap_frames equal "
        "to the sampler's."
    ]
    return prompt, notes


WORKFLOWS = {"wan21_t2v_streaming_temporal_align.json": wan_t2v_streaming_temporal_align}
