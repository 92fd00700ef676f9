"""Token layout of ComfyUI's HunyuanVideo models (``comfy/ldm/hunyuan_video/model.py``, 0.3.75).

HunyuanVideo embeds its latent ``[B, C, T, H, W]`` with a (1, 2, 2) patch convolution (1.5: (1, 1, 1)) into
frame-major tokens, then runs *joint* attention over ``[reference latent tokens (I2V), video tokens,
text tokens]`` in its double- and single-stream blocks (``flipped_img_txt``), with an additive mask
over padded text. The model itself puts ``block_type`` ("double" / "single") and ``block_index`` into
transformer_options around those blocks, and not around the text-only token refiner, so they mark
the video attention calls. The reference tokens (RoPE frame -1) and the text are off the grid:
extra tokens, attended exactly. HunyuanVideo 1.5 (same class, 54 double blocks, no single ones) adds byT5
glyph tokens and SigLIP vision tokens to the text, after the video as well.
"""

from __future__ import annotations

from .wan import SUFFIX_REST, TokenGrid

JOINT_BLOCK_TYPES = ("double", "single")


def is_hunyuan_video_model(diffusion_model) -> bool:
    return (
        hasattr(diffusion_model, "double_blocks")
        and hasattr(diffusion_model, "single_blocks")
        and hasattr(diffusion_model, "img_ids")
        and len(getattr(diffusion_model, "patch_size", ())) == 3
    )


def hunyuan_token_grid(diffusion_model, x, ref_latent=None) -> TokenGrid:
    """Grid of the video tokens (the patch convolution's floor), reference tokens before it, text after."""
    pt, ph, pw = diffusion_model.patch_size
    prefix = 0
    if ref_latent is not None:
        prefix = (ref_latent.shape[2] // pt) * (ref_latent.shape[3] // ph) * (ref_latent.shape[4] // pw)
    return TokenGrid(x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw, prefix, SUFFIX_REST)


def hunyuan_call_inputs(args: tuple, kwargs: dict) -> tuple:
    """(x, transformer_options, ref_latent) of ``HunyuanVideo._forward``'s wrapped call ``(x, timestep,
    context, y, txt_byt5, clip_fea, guidance, attention_mask, guiding_frame_index, ref_latent,
    disable_time_r, control, transformer_options)``."""
    to = args[12] if len(args) > 12 else kwargs.get("transformer_options", {})
    ref_latent = args[9] if len(args) > 9 else kwargs.get("ref_latent")
    return args[0], to, ref_latent


def joint_block_index(transformer_options: dict, double_blocks: int) -> int | None:
    """The pack's block number of a joint-attention call: double blocks first, then single blocks."""
    block_type, index = transformer_options.get("block_type"), transformer_options.get("block_index")
    if block_type not in JOINT_BLOCK_TYPES or index is None:
        return None
    return int(index) + (double_blocks if block_type == "single" else 0)
