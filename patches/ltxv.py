"""Token layout of ComfyUI's LTX-Video models (``comfy/ldm/lightricks/model.py``, 0.3.75).

LTXV patchifies its 128-channel latent ``[B, C, F, H, W]`` with patch (1, 1, 1) into frame-major
tokens (frame, row, column). Guide frames (``LTXVAddGuide``, ``LTXVImgToVideo``'s keyframes) are
appended along F, and ``keyframe_idxs`` moves the positions of those trailing tokens elsewhere in
time: they are not on the grid, so they are extra tokens after it. Self-attention is each block's
``attn1`` (``attn2`` is the text cross-attention).
"""

from __future__ import annotations

from .wan import TokenGrid

SELF_ATTENTION = "attn1"


def is_ltxv_model(diffusion_model) -> bool:
    return hasattr(diffusion_model, "transformer_blocks") and hasattr(diffusion_model, "patchifier")


def ltxv_token_grid(diffusion_model, x, keyframe_idxs=None) -> TokenGrid | None:
    """The grid ``_forward`` builds for ``x``; None when the guide tokens are not whole frames."""
    pt, ph, pw = diffusion_model.patchifier.patch_size
    frames, rows, cols = x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw
    guides = 0 if keyframe_idxs is None else int(keyframe_idxs.shape[2])
    if guides % (rows * cols) or guides >= frames * rows * cols:
        return None
    return TokenGrid(frames - guides // (rows * cols), rows, cols, suffix_tokens=guides)


def ltxv_call_inputs(args: tuple, kwargs: dict) -> tuple:
    """(x, transformer_options, keyframe_idxs) of ``LTXVModel._forward``'s wrapped call
    ``(x, timestep, context, attention_mask, frame_rate, transformer_options, keyframe_idxs)``."""
    to = args[5] if len(args) > 5 else kwargs.get("transformer_options", {})
    keyframe_idxs = args[6] if len(args) > 6 else kwargs.get("keyframe_idxs")
    return args[0], to, keyframe_idxs


def self_attention_paths(diffusion_model) -> list[tuple[str, int]]:
    """(object-patch path of ``attn1.forward``, block index) for every transformer block."""
    return [
        (f"diffusion_model.transformer_blocks.{i}.{SELF_ATTENTION}.forward", i)
        for i, block in enumerate(diffusion_model.transformer_blocks)
        if hasattr(block, SELF_ATTENTION)
    ]
