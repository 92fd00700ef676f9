"""Token layout of ComfyUI's Wan models (2.1 / 2.2, T2V, I2V, FLF2V, Fun-Camera, VACE, Phantom).

Wan patchifies the latent [B, C, T, H, W] with patch (1, 2, 2) into frame-major tokens
(frame, row, column). Extras that change the token count (ComfyUI 0.3.75 ``_forward`` /
``forward_orig``): ``time_dim_concat`` frames are appended along T before patching (so they are part
of the grid), and with ``ref_conv`` a ``reference_latent`` adds its H'xW' tokens in front at RoPE
frame 0 (one extra leading frame of the grid when its size matches the video's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Attribute paths of the self-attention modules of every Wan variant's transformer blocks.
BLOCK_LISTS = ("blocks", "vace_blocks")


SUFFIX_REST = -1
"""``TokenGrid.suffix_tokens`` for "every token after the grid" (HunyuanVideo's text, whose length
varies with the prompt and its byT5 / vision tokens)."""


@dataclass(frozen=True)
class TokenGrid:
    """Key-side token grid (frames, rows, columns) and the tokens before and after it that are not on
    it (reference latents, guide frames, the text of a joint attention): attended exactly."""

    frames: int
    rows: int
    cols: int
    prefix_tokens: int = 0
    suffix_tokens: int = 0

    @property
    def has_extras(self) -> bool:
        return bool(self.prefix_tokens or self.suffix_tokens)

    @property
    def tokens(self) -> int:
        return self.frames * self.rows * self.cols

    @property
    def frame_tokens(self) -> int:
        return self.rows * self.cols


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def wan_token_grid(diffusion_model, x, time_dim_concat=None, extra_conds: dict | None = None) -> TokenGrid:
    """The grid ``forward_orig`` will build for input ``x`` (same padding rules as ComfyUI)."""
    pt, ph, pw = diffusion_model.patch_size
    frames = _ceil_div(x.shape[2], pt) * pt
    if time_dim_concat is not None:
        frames += _ceil_div(time_dim_concat.shape[2], pt) * pt
    frames //= pt
    rows, cols = _ceil_div(x.shape[3], ph), _ceil_div(x.shape[4], pw)
    prefix = 0
    reference = (extra_conds or {}).get("reference_latent")
    if getattr(diffusion_model, "ref_conv", None) is not None and reference is not None:
        ref_rows, ref_cols = reference.shape[-2] // ph, reference.shape[-1] // pw
        if (ref_rows, ref_cols) == (rows, cols):
            frames += 1  # same size: the reference is one more frame of the grid (RoPE frame 0)
        else:
            prefix = ref_rows * ref_cols
    return TokenGrid(frames, rows, cols, prefix)


def grid_from_newer_comfy(transformer_options: dict) -> tuple[int, int, int] | None:
    """ComfyUI after 0.3.75 puts ``grid_sizes`` into transformer_options; use it when present."""
    sizes = transformer_options.get("grid_sizes")
    if sizes is None:
        return None
    return tuple(int(s) for s in sizes[-3:])


def self_attention_paths(diffusion_model) -> list[tuple[str, int]]:
    """(object-patch path of ``self_attn.forward``, block index) for every transformer block."""
    paths = []
    for list_name in BLOCK_LISTS:
        blocks = getattr(diffusion_model, list_name, None)
        if blocks is None:
            continue
        offset = 0 if list_name == "blocks" else len(diffusion_model.blocks)
        for i, block in enumerate(blocks):
            if hasattr(block, "self_attn"):
                paths.append((f"diffusion_model.{list_name}.{i}.self_attn.forward", offset + i))
    return paths


def is_wan_model(diffusion_model) -> bool:
    return hasattr(diffusion_model, "blocks") and hasattr(diffusion_model, "rope_encode") and math.prod(
        diffusion_model.patch_size
    ) > 0
