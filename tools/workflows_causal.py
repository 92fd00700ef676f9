"""Shipped workflows of the causal KV-cache sampler (see tools/make_workflows.py)."""

from make_workflows import monarch_attention
from tiny_models import UMT5_XXL, WAN21_VAE

# Self-Forcing DMD (Wan 2.1 T2V 1.3B, chunk-wise) in ComfyUI's single-file format, as ComfyUI users name it
# (HF lym00/Wan2.1-T2V-1.3B-Self-Forcing-VACE-Addon-Experiment). The official release is the training
# checkpoint gdhe17/Self-Forcing checkpoints/self_forcing_dmd.pt, which ComfyUI's loader does not read as is.
SELF_FORCING_1_3B = "Wan2.1_T2V_1.3B_SelfForcing_DMD-FP8_e4m3fn.safetensors"

SELF_FORCING_NOTE = (
    "Models:\n"
    f"- models/diffusion_models/{SELF_FORCING_1_3B}\n"
    "  Self-Forcing DMD, Wan 2.1 T2V 1.3B chunk-wise (3 latent frames per chunk, 4 steps), in ComfyUI format, "
    "e.g. from huggingface.co/lym00/Wan2.1-T2V-1.3B-Self-Forcing-VACE-Addon-Experiment. The official weights "
    "are gdhe17/Self-Forcing checkpoints/self_forcing_dmd.pt (training format: convert it to a ComfyUI "
    "diffusion model first). File name as found in public ComfyUI use, not verified here; any ComfyUI-format "
    "Self-Forcing or CausVid Wan 2.1 1.3B file works: pick it in Load Diffusion Model.\n"
    f"- models/text_encoders/{UMT5_XXL}\n"
    f"- models/vae/{WAN21_VAE}\n"
    "(Comfy-Org/Wan_2.1_ComfyUI_repackaged)\n\n"
    "An ordinary Wan 2.1 T2V model also runs in this sampler but was not trained to generate against a KV "
    "cache: expect poor video."
)


def _graph(total_frames: int, window: int, sinks: int, monarch: bool, prefix: str, text: str) -> dict:
    model = ["1", 0]
    prompt = {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": SELF_FORCING_1_3B, "weight_dtype": "default"},
        },
        "2": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"},
        },
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": text}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
    }
    if monarch:
        prompt["5"] = monarch_attention(model)
        model = ["5", 0]
    prompt["6"] = {
        "class_type": "RTV_CausalStreamingSampler",
        "inputs": {
            "model": model,
            "positive": ["3", 0],
            "vae": ["4", 0],
            "total_frames": total_frames,
            "chunk_latent_frames": 3,
            "timesteps": "1000,750,500,250",
            "shift": 5.0,
            "kv_window_frames": window,
            "sink_frames": sinks,
            "seed": 42,
            "width": 832,
            "height": 480,
            "chunk_save_prefix": f"RealtimeVideo/{prefix}",
        },
    }
    prompt["7"] = {
        "class_type": "SaveAnimatedWEBP",
        "inputs": {
            "images": ["6", 0],
            "filename_prefix": f"RealtimeVideo/{prefix}",
            "fps": 16.0,
            "lossless": False,
            "quality": 90,
            "method": "default",
        },
    }
    return prompt


def self_forcing_realtime() -> tuple[dict, list[str]]:
    """Self-Forcing's own setting: 81 frames in 7 chunks of 3 latent frames, 4 steps, KV cache of all frames."""
    prompt = _graph(
        81, -1, 0, False, "self_forcing", "a corgi runs along a sunny beach, waves splashing, tracking shot"
    )
    notes = [
        SELF_FORCING_NOTE
        + "\n\nCausal Streaming Sampler (RTV): 7 chunks of 3 latent frames (12 video frames), "
        "4 steps each plus one clean pass that writes the KV cache. Each finished chunk is previewed on the node "
        "while the next one is generated and saved under output/RealtimeVideo/ as it completes."
    ]
    return prompt, notes


def self_forcing_long_monarch() -> tuple[dict, list[str]]:
    """161 frames (twice the trained context), rolling KV cache of 21 latent frames with 3 sinks, Monarch."""
    prompt = _graph(
        161, 21, 3, True, "self_forcing_long", "a drone flies low over a misty pine forest at sunrise"
    )
    notes = [
        SELF_FORCING_NOTE
        + "\n\nLong video (set total_frames to any length): kv_window_frames 21 keeps the cache at the model's trained context "
        "(memory stays flat for any length) and sink_frames 3 keeps the opening frames as reference. Monarch "
        "Attention (RTV) serves each chunk against its cached keys (chunk mode): faster attention, an "
        "approximation (MonarchRT fine-tunes Self-Forcing for it; exact_local 1 keeps the zero-shot error low). "
        "Bypass it for exact attention."
    ]
    return prompt, notes


WORKFLOWS = {
    "wan21_self_forcing_causal_realtime.json": self_forcing_realtime,
    "wan21_self_forcing_causal_long_monarch.json": self_forcing_long_monarch,
}
