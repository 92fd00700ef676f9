"""The project's own small reference video model: its prompt node, and where its weights live.

The reference model (a tiny Wan 2.1 T2V DiT and Wan 2.1 VAE trained on procedural videos by
tools/train_reference.py) has no text encoder: ``RTV_ReferencePrompt`` turns one of its prompt
classes into the fixed conditioning tensor it was trained on (kernels/reference_prompts.py). Its
weights sit in the pack's ``reference_model/`` folder, added to ComfyUI's "diffusion_models" and
"vae" search paths when the pack loads, so the stock "Load Diffusion Model" and "Load VAE" nodes
list them next to the user's own models.
"""

from __future__ import annotations

from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..kernels.reference_prompts import PROMPT_TEXTS, UNCONDITIONAL, prompt_conditioning

CATEGORY = "RealtimeVideo/reference"
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "reference_model"
DIT_FILE = "rtv_reference_wan_t2v.safetensors"
VAE_FILE = "rtv_reference_wan_vae.safetensors"


def register_weight_folders() -> None:
    """Idempotent: ComfyUI ignores a path it already has."""
    for folder in ("diffusion_models", "vae"):
        folder_paths.add_model_folder_path(folder, str(WEIGHTS_DIR))


register_weight_folders()


class RTV_ReferencePrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_ReferencePrompt",
            display_name="Reference Prompt (RTV)",
            category=CATEGORY,
            description=(
                "Conditioning for the pack's own small reference video model only "
                f"({DIT_FILE} with {VAE_FILE}): a prompt class it was trained on, as the fixed "
                "tensor of Wan's text shape it expects. Any other model gets meaningless conditioning."),
            inputs=[
                io.Combo.Input(
                    "prompt",
                    options=[*PROMPT_TEXTS, UNCONDITIONAL],
                    default=PROMPT_TEXTS[0],
                    tooltip=(
                        "Only for the pack's reference model (rtv_reference_wan_t2v): one of the prompt "
                        "classes it was trained on; the class decides the main object's colour, shape and "
                        f"motion, the seed the rest. '{UNCONDITIONAL}' is the negative prompt for CFG."),
                ),
            ],
            outputs=[io.Conditioning.Output(tooltip="CONDITIONING [1, 512, 4096] for the reference model only.")],
        )

    @classmethod
    def execute(cls, prompt: str) -> io.NodeOutput:
        return io.NodeOutput([[prompt_conditioning(prompt), {}]])


NODES = [RTV_ReferencePrompt]
