"""One latent frame through ComfyUI's Wan 2.1 VAE decoder, with the residual blocks' elementwise
passes fused (same weights, same cache, same frames up to rounding).

``Decoder3d.forward`` runs each residual block as RMS_norm (a reduction, a division, two scalings),
SiLU, then per causal conv: a concatenation with the cached frames, a padding copy, the conv and its
bias, and at the end the residual add: about 40 passes over the activations per block, where the
convolutions themselves read about 3. On the H100 these passes took more device time than the
convolutions (bench/results/vae_decode_h100_pageable_profile.json: 1.48 s of device time for 81
frames at 480p, 0.56 s of it in cuDNN).

Here each causal conv's input is one buffer per call, [cached frames | new frames], the fused norm +
SiLU (``kernels.wan_vae``) writes the new frames straight into it, the conv pads spatially by itself,
the first conv's bias is added inside the second norm and the second conv's bias inside the residual
add. Everything else (the middle attention, the resampling layers and their time convs) is
ComfyUI's own code on the same ``feat_cache``. Blocks of another shape also take ComfyUI's code.
"""

from __future__ import annotations

import comfy.ops
import torch
import torch.nn.functional as F
from comfy.ldm.wan.vae import CACHE_T, CausalConv3d, Decoder3d, ResidualBlock, RMS_norm

from ..kernels.wan_vae import add_bias_residual, rms_norm_silu


def _is_time_causal_conv(module) -> bool:
    """A CausalConv3d that looks CACHE_T frames back (time kernel 3, stride 1): the cached kind."""
    return (
        isinstance(module, CausalConv3d)
        and module.kernel_size[0] == CACHE_T + 1
        and module._padding[4] == CACHE_T
        and module.stride[0] == 1
    )


def _is_channel_rms_norm(module) -> bool:
    return isinstance(module, RMS_norm) and module.channel_first and module.bias is None


def fusable_residual_block(block) -> bool:
    """RMS_norm, SiLU, causal conv, RMS_norm, SiLU, Dropout (inference: identity), causal conv."""
    layers = list(getattr(block, "residual", ()))
    return (
        isinstance(block, ResidualBlock)
        and len(layers) == 7
        and _is_channel_rms_norm(layers[0])
        and isinstance(layers[1], torch.nn.SiLU)
        and _is_time_causal_conv(layers[2])
        and _is_channel_rms_norm(layers[3])
        and isinstance(layers[4], torch.nn.SiLU)
        and isinstance(layers[5], torch.nn.Dropout)
        and _is_time_causal_conv(layers[6])
    )


def supports_fused_decode(decoder) -> bool:
    """A Wan 2.1 decoder whose first conv and head have the expected shape (the blocks may vary)."""
    head = list(getattr(decoder, "head", ()))
    return (
        isinstance(decoder, Decoder3d)
        and _is_time_causal_conv(decoder.conv1)
        and len(head) == 3
        and _is_channel_rms_norm(head[0])
        and isinstance(head[1], torch.nn.SiLU)
        and _is_time_causal_conv(head[2])
    )


def _input_buffer(x: torch.Tensor, cached: torch.Tensor | None) -> torch.Tensor:
    """[B, C, CACHE_T + T, H, W] channels-last-3d: the cached frames (zeros before the video's first
    frame, as ComfyUI's causal padding), then room for ``x``'s frames."""
    b, c, t, h, w = x.shape
    buf = torch.empty((b, c, CACHE_T + t, h, w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last_3d)
    have = 0 if cached is None else cached.shape[2]
    if have < CACHE_T:
        buf[:, :, : CACHE_T - have].zero_()
    if have:
        buf[:, :, CACHE_T - have : CACHE_T].copy_(cached)
    return buf


def _conv(conv: CausalConv3d, buf: torch.Tensor, with_bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The conv over the whole buffer (time fully given, space padded by cuDNN); returns the output
    and, when the bias was left out, the bias for the next fused pass to add."""
    weight, bias = comfy.ops.cast_bias_weight(conv, buf)
    padding = (0, conv._padding[2], conv._padding[0])
    out = F.conv3d(buf, weight, bias if with_bias else None, conv.stride, padding, conv.dilation, conv.groups)
    return out, None if with_bias else bias


class FusedDecoderStep:
    """``step(x, feat_cache)`` == ``decoder(x, feat_cache=feat_cache, feat_idx=[0])`` with fused passes.

    ``feat_cache`` holds the same frames as ComfyUI's (entries of the fused convs always hold two
    frames, zeros before the first: ComfyUI keeps one frame there and pads the other).
    """

    def __init__(self, decoder, backend: str = "auto"):
        if not supports_fused_decode(decoder):
            raise ValueError("not a Wan 2.1 VAE decoder this fused path knows (Decoder3d with RMS_norm heads)")
        self.decoder = decoder
        self.backend = backend

    def _cached_conv(self, conv, fill, x, feat_cache, feat_idx, with_bias=True):
        idx = feat_idx[0]
        feat_idx[0] += 1
        buf = _input_buffer(x, feat_cache[idx])
        fill(buf[:, :, CACHE_T:])
        feat_cache[idx] = buf[:, :, -CACHE_T:].clone()
        return _conv(conv, buf, with_bias)

    def _norm_silu_conv(self, norm, conv, x, in_bias, feat_cache, feat_idx, with_bias):
        def fill(frames):
            rms_norm_silu(x, norm.gamma, norm.scale, in_bias, out=frames, backend=self.backend)

        return self._cached_conv(conv, fill, x, feat_cache, feat_idx, with_bias)

    def _residual_block(self, block, x, feat_cache, feat_idx):
        if not fusable_residual_block(block):
            return block(x, feat_cache, feat_idx)
        norm1, _, conv1, norm2, _, _, conv2 = block.residual
        h, bias1 = self._norm_silu_conv(norm1, conv1, x, None, feat_cache, feat_idx, with_bias=False)
        h, bias2 = self._norm_silu_conv(norm2, conv2, h, bias1, feat_cache, feat_idx, with_bias=False)
        return add_bias_residual(h, bias2, block.shortcut(x), backend=self.backend)

    def __call__(self, x: torch.Tensor, feat_cache: list) -> torch.Tensor:
        d = self.decoder
        feat_idx = [0]
        x, _ = self._cached_conv(d.conv1, lambda frames: frames.copy_(x), x, feat_cache, feat_idx)
        for layer in d.middle:
            x = self._residual_block(layer, x, feat_cache, feat_idx) if isinstance(layer, ResidualBlock) else layer(x)
        for layer in d.upsamples:
            if isinstance(layer, ResidualBlock):
                x = self._residual_block(layer, x, feat_cache, feat_idx)
            else:
                x = layer(x, feat_cache, feat_idx)
        norm, _, conv = d.head
        x, _ = self._norm_silu_conv(norm, conv, x, None, feat_cache, feat_idx, with_bias=True)
        return x
