"""Write the shipped UI-format workflows in workflows/ from compact definitions.

Definitions are API-format graphs with the real model file names; the UI layout comes from
tools/workflow_format.api_to_ui and the node schemas of a real server (started here). Run it after a
node's schema changes:  .host/venv/bin/python tools/make_workflows.py
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_host import ComfyServer  # noqa: E402
from tiny_models import UMT5_XXL, WAN21_T2V_1_3B, WAN21_VAE  # noqa: E402
from workflow_format import api_to_ui  # noqa: E402

WORKFLOWS_DIR = Path(__file__).resolve().parents[1] / "workflows"

WAN_MODELS_NOTE = (
    "Models (ComfyUI's Wan 2.1 repackaged release, Comfy-Org/Wan_2.1_ComfyUI_repackaged):\n"
    f"- models/diffusion_models/{WAN21_T2V_1_3B}\n"
    f"- models/text_encoders/{UMT5_XXL}\n"
    f"- models/vae/{WAN21_VAE}\n"
    "Self-Forcing / CausVid distills of Wan 2.1 1.3B load with the same UNETLoader."
)


def monarch_attention(model: list) -> dict:
    """An RTV_MonarchAttention node at the node's defaults, patching ``model`` (a [node id, output] link)."""
    return {"class_type": "RTV_MonarchAttention", "inputs": {
        "model": model, "tile_frames": 1, "h_split": 1, "w_split": 1, "iterations": 1, "dense_first_steps": 0,
        "dense_last_steps": 0, "dense_blocks": "", "backend": "auto", "report_error": False, "exact_local": 1}}  # fmt: skip


def wan_t2v_monarch() -> tuple[dict, list[str]]:
    """Wan 2.1 T2V 1.3B with Monarch attention patched in; writes an animated WEBP."""
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN21_T2V_1_3B, "weight_dtype": "default"}},
        "2": monarch_attention(["1", 0]),
        "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 8.0}},
        "4": {"class_type": "CLIPLoader", "inputs": {"clip_name": UMT5_XXL, "type": "wan", "device": "default"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "a red fox runs through fresh snow in a birch forest, morning light"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["4", 0], "text": "blurry, low quality, static, distorted, watermark, text"}},
        "7": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {
            "width": 832, "height": 480, "length": 33, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {
            "model": ["3", 0], "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["7", 0],
            "seed": 7, "steps": 20, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0}},
        "9": {"class_type": "VAELoader", "inputs": {"vae_name": WAN21_VAE}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["9", 0]}},
        "11": {"class_type": "SaveAnimatedWEBP", "inputs": {
            "images": ["10", 0], "filename_prefix": "RealtimeVideo/wan_t2v_monarch", "fps": 16.0,
            "lossless": False, "quality": 90, "method": "default"}},
    }
    notes = [WAN_MODELS_NOTE + "\n\nMonarch Attention (RTV) swaps the video self-attention for a "
             "Monarch-factorised one. Raise h_split / iterations for accuracy, see the README table."]
    return prompt, notes


WORKFLOWS = {"wan21_t2v_monarch_attention.json": wan_t2v_monarch}


def all_workflows() -> dict:
    """This file's workflows plus those of every ``tools/workflows_<capability>.py`` (its WORKFLOWS)."""
    found = dict(WORKFLOWS)
    for path in sorted(Path(__file__).resolve().parent.glob("workflows_*.py")):
        module = importlib.import_module(path.stem)
        found.update(module.WORKFLOWS)
    return found


def main() -> int:
    with ComfyServer() as server:
        info = server.object_info()
    WORKFLOWS_DIR.mkdir(exist_ok=True)
    for name, build in all_workflows().items():
        prompt, notes = build()
        ui = api_to_ui(prompt, info, notes=notes)
        (WORKFLOWS_DIR / name).write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote workflows/{name} ({len(prompt)} nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
