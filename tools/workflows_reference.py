"""Shipped workflow of the pack's own reference model (see tools/make_workflows.py).

It runs as shipped, with nothing to download: the weights are in reference_model/ (issue 10), which
the pack adds to ComfyUI's diffusion_models and vae folders. ``make demo`` runs this workflow.
"""

from make_workflows import monarch_attention
from pack_import import load_pack

load_pack("rtv")
from rtv.kernels.reference_prompts import UNCONDITIONAL  # noqa: E402

REFERENCE_DIT = "rtv_reference_wan_t2v.safetensors"
REFERENCE_VAE = "rtv_reference_wan_vae.safetensors"
DEMO_PROMPT = "yellow circle moves right"


def reference_streaming_monarch() -> tuple[dict, list[str]]:
    """81 frames of the reference model in three 33-frame chunks, Monarch attention patched in."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": REFERENCE_DIT, "weight_dtype": "default"}},
        "2": monarch_attention(["1", 0]),
        "3": {"class_type": "RTV_ReferencePrompt", "inputs": {"prompt": DEMO_PROMPT}},
        "4": {"class_type": "RTV_ReferencePrompt", "inputs": {"prompt": UNCONDITIONAL}},
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": REFERENCE_VAE}},
        "6": {"class_type": "RTV_StreamingSampler", "inputs": {
            "model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0], "vae": ["5", 0], "width": 128,
            "height": 96, "total_frames": 81, "chunk_frames": 33, "overlap_frames": 9, "seed": 1, "steps": 20,
            "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple", "overlap_mode": "pinned_latents",
            "anchor_strength": 0.0, "drift_correction": 0.0, "chunk_save_prefix": "RealtimeVideo/reference_stream"}},
        "7": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["6", 0], "filename_prefix": "RealtimeVideo/reference_demo", "fps": 16.0, "lossless": True,
            "quality": 90, "method": "default"}},
    }  # fmt: skip
    notes = [
        "The pack's own small reference model (reference_model/, trained by tools/train_reference.py on "
        "procedural videos): nothing to download. Reference Prompt (RTV) picks one of its 12 prompt classes "
        "(a colour, a shape, a motion); it has no text encoder and conditions this model only.\n\n"
        "Streaming Sampler (RTV): 81 frames as 3 chunks of 33 (its training length) overlapping by 9; "
        "Monarch Attention (RTV) is patched in. Runs in under a minute on a CPU."
    ]
    return prompt, notes


WORKFLOWS = {"reference_model_streaming_monarch.json": reference_streaming_monarch}
