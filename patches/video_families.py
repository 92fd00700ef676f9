"""The video DiT families the Monarch patch serves, and what it needs from each.

For each family: how to recognise its diffusion model, where the token grid and the transformer
options are in its DIFFUSION_MODEL call, how its video self-attention calls are marked with a block
number, and which extra model-specific work the patch installs (Wan's fused block steps).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from .fused_block import fuse_wan_blocks
from .hunyuan import hunyuan_call_inputs, hunyuan_token_grid, is_hunyuan_video_model, joint_block_index
from .ltxv import is_ltxv_model, ltxv_call_inputs, ltxv_token_grid
from .ltxv import self_attention_paths as ltxv_self_attention_paths
from .self_attention import BLOCK_MARK, MARKED_FLAG, keyword_marked_forward, mark_self_attention
from .wan import TokenGrid, grid_from_newer_comfy, is_wan_model, wan_token_grid

SUPPORTED = "Wan 2.1/2.2 (T2V, I2V, FLF2V, Fun-Camera, VACE, TI2V 5B), HunyuanVideo 1.0/1.5 and LTX-Video"


@dataclass(frozen=True)
class VideoFamily:
    name: str
    call_grid: Callable[..., tuple[TokenGrid | None, dict]]
    """``(diffusion_model, args, kwargs)`` of the DIFFUSION_MODEL call -> (grid or None, transformer_options)."""
    block_reader: Callable[[object], Callable[[dict], int | None]]
    """``diffusion_model`` -> a picklable function (sequence parallel sends it to other processes) taking
    an attention call's transformer_options to its block number, None if it is not video attention."""
    install: Callable[[object], None]
    """Markers and model-specific patches on a ModelPatcher clone."""
    pixels_per_token: Callable[[object], int] = lambda dm: 16
    """``diffusion_model`` -> frame pixels per token along height and width (VAE stride x patch): for error
    messages."""
    frames_per_latent: int = 4
    """Video frames per latent frame (the VAE's temporal stride): for error messages."""


def _wan_call_grid(dm, args, kwargs):
    time_dim_concat = args[4] if len(args) > 4 else kwargs.get("time_dim_concat")
    to = args[5] if len(args) > 5 else kwargs.get("transformer_options", {})
    grid = wan_token_grid(dm, args[0], time_dim_concat, kwargs)
    newer = grid_from_newer_comfy(to)
    if newer is not None and newer != (grid.frames, grid.rows, grid.cols):
        grid = TokenGrid(*newer)
    return grid, to


WAN22_VAE_CHANNELS = 48
"""Latent channels of the Wan 2.2 VAE (16x spatial), which only Wan 2.2 TI2V 5B uses; the others use Wan 2.1's (8x)."""


def _wan_pixels_per_token(dm) -> int:
    return (16 if dm.out_dim == WAN22_VAE_CHANNELS else 8) * dm.patch_size[-1]


def _hunyuan_pixels_per_token(dm) -> int:
    """HunyuanVideo 1.0: 16 channels, 8x VAE, patch 2; 1.5: 32 channels, 16x VAE, patch 1."""
    return (16 if dm.out_channels == 32 else 8) * dm.patch_size[-1]


def _install_wan(model) -> None:
    mark_self_attention(model)
    fuse_wan_blocks(model)


def _ltxv_call_grid(dm, args, kwargs):
    x, to, keyframe_idxs = ltxv_call_inputs(args, kwargs)
    return ltxv_token_grid(dm, x, keyframe_idxs), to


def _install_ltxv(model) -> None:
    to = model.model_options.setdefault("transformer_options", {})
    if to.get(MARKED_FLAG):
        return
    for path, block in ltxv_self_attention_paths(model.get_model_object("diffusion_model")):
        model.add_object_patch(path, keyword_marked_forward(model.get_model_object(path), block))
    to[MARKED_FLAG] = True


def _hunyuan_call_grid(dm, args, kwargs):
    x, to, ref_latent = hunyuan_call_inputs(args, kwargs)
    return hunyuan_token_grid(dm, x, ref_latent), to


def marked_block(to: dict) -> int | None:
    return to.get(BLOCK_MARK)


def _marks(dm):
    return marked_block


def _joint_blocks(dm):
    return functools.partial(joint_block_index, double_blocks=len(dm.double_blocks))


def _install_nothing(model) -> None:
    """HunyuanVideo marks its joint blocks itself (``block_type``, ``block_index``)."""


FAMILIES = (
    (is_wan_model, VideoFamily("wan", _wan_call_grid, _marks, _install_wan, _wan_pixels_per_token)),
    (is_ltxv_model, VideoFamily("ltxv", _ltxv_call_grid, _marks, _install_ltxv, lambda dm: 32, 8)),
    (is_hunyuan_video_model, VideoFamily("hunyuan_video", _hunyuan_call_grid, _joint_blocks, _install_nothing,
                                         _hunyuan_pixels_per_token)),
)


def video_family(diffusion_model) -> VideoFamily | None:
    return next((family for matches, family in FAMILIES if matches(diffusion_model)), None)
