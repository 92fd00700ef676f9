"""The reference model's VAE: ComfyUI's own Wan 2.1 ``WanVAE`` at a small base width, trained here.

``comfy.sd.VAE`` recognises a Wan 2.1 VAE by its keys and reads the base width from
``decoder.head.0.gamma``; z_dim 16, the channel multipliers and the 4x temporal / 8x spatial
compression are fixed, so this VAE plugs into every Wan 2.1 graph. ComfyUI feeds it pixels in
[-1, 1] and hands the DiT ``(mu - mean) / std`` with Wan 2.1's fixed per-channel latent statistics
(``comfy.latent_formats.Wan21``): after training, ``fold_latent_normalisation`` rewrites the two 1x1x1
convolutions around the latent (``conv1`` after the encoder, ``conv2`` before the decoder) so that
this VAE's latents, seen through those fixed statistics, have zero mean and unit variance per
channel, the scale the flow-matching DiT is trained and sampled at. The decoder's output is unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LATENT_CHANNELS = 16
WAN21_DIM_MULT = [1, 2, 4, 4]
WAN21_TEMPORAL_DOWNSAMPLE = [False, True, True]


def build_vae(base_dim: int) -> nn.Module:
    from comfy.ldm.wan.vae import WanVAE

    # the exact configuration comfy.sd.VAE builds for a Wan 2.1 VAE file (only the width varies)
    vae = WanVAE(dim=base_dim, z_dim=LATENT_CHANNELS, dim_mult=WAN21_DIM_MULT, num_res_blocks=2, attn_scales=[],
                 temperal_downsample=WAN21_TEMPORAL_DOWNSAMPLE, dropout=0.0)
    init_like_torch(vae)
    return vae


def init_like_torch(module: nn.Module) -> None:
    """ComfyUI's ops skip weight initialisation (checkpoints overwrite it), so a fresh module holds
    uninitialised memory: give layers torch's default initialisation, norms unit gain and no bias."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.modules.conv._ConvNd.reset_parameters(m)
        elif isinstance(m, nn.Linear):
            nn.Linear.reset_parameters(m)
    for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "gamma" or (p.ndim == 1 and leaf == "weight" and "norm" in name):
            nn.init.ones_(p)
        elif leaf == "bias" and "norm" in name:
            nn.init.zeros_(p)


def wan21_latent_statistics() -> tuple[torch.Tensor, torch.Tensor]:
    import comfy.latent_formats

    fmt = comfy.latent_formats.Wan21()
    return fmt.latents_mean.flatten(), fmt.latents_std.flatten()


def encode_posterior(vae: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``WanVAE.encode`` (causal chunks of 1, 4, 4, ... frames through the encoder's cache) returning
    the log-variance too: mu, log_var of shape (B, 16, 1 + (T - 1) / 4, H / 8, W / 8)."""
    from comfy.ldm.wan.vae import count_conv3d

    feat_map = [None] * count_conv3d(vae.decoder)
    chunks = 1 + (pixels.shape[2] - 1) // 4
    outs = []
    for i in range(chunks):
        part = pixels[:, :, :1] if i == 0 else pixels[:, :, 1 + 4 * (i - 1):1 + 4 * i]
        outs.append(vae.encoder(part, feat_cache=feat_map, feat_idx=[0]))
    mu, log_var = vae.conv1(torch.cat(outs, 2)).chunk(2, dim=1)
    return mu, log_var


def clips_to_pixels(clips: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) in [0, 1] -> (B, 3, T, H, W) in [-1, 1], ComfyUI's VAE input."""
    return clips.permute(0, 4, 1, 2, 3) * 2 - 1


def saturation_weights(pixels: torch.Tensor, object_weight: float) -> torch.Tensor:
    """Per-pixel loss weights (B, 1, T, H, W): 1 + object_weight * saturation^2 of the target.

    Objects are saturated (0.8-0.9), the ground is not (under 0.2, weight ~1). An unweighted loss
    let every H100 run's VAE reconstruct green, blue and yellow objects as grey (red only survived:
    the red-cyan axis carries most of the clips' colour variance through the distractors), which
    capped the DiT's samples at 17 % recognisable before it trained a step."""
    rgb = (pixels.float() + 1) / 2
    top = rgb.amax(1, keepdim=True)
    saturation = (top - rgb.amin(1, keepdim=True)) / top.clamp_min(0.05)
    return 1 + object_weight * saturation.square()


def vae_loss(vae: nn.Module, pixels: torch.Tensor, kl_weight: float, stats, generator=None,
             object_weight: float = 0.0) -> tuple:
    """L1 + MSE reconstruction of a sampled latent, weighted towards saturated (object) pixels, plus
    KL to N(0, 1) measured in the DiT's latent space (Wan 2.1 statistics), which keeps that space
    smooth and of sensible scale."""
    mean, std = (s.to(pixels.device).view(1, -1, 1, 1, 1) for s in stats)
    mu, log_var = encode_posterior(vae, pixels)
    log_var = log_var.float().clamp(-30, 20)
    noise = torch.randn(mu.shape, device=mu.device, generator=generator)
    z = mu.float() + noise * torch.exp(0.5 * log_var)
    recon = vae.decode(z)
    err = recon.float() - pixels
    weights = saturation_weights(pixels, object_weight)
    # normalised by the mean weight, so the loss keeps the scale of the unweighted one
    rec = (weights * (err.abs() + err.square())).mean() / weights.mean()
    mu_n = (mu.float() - mean) / std
    var_n = torch.exp(log_var) / std**2
    kl = 0.5 * (mu_n**2 + var_n - torch.log(var_n) - 1).mean()
    return rec + kl_weight * kl, {"reconstruction": float(rec.detach()), "kl": float(kl.detach())}


@torch.no_grad()
def latent_space_moments(vae: nn.Module, pixels: torch.Tensor, stats) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of (mu - wan_mean) / wan_std over a batch."""
    mean, std = (s.to(pixels.device).view(1, -1, 1, 1, 1) for s in stats)
    mu = vae.encode(pixels).float()
    z = ((mu - mean) / std).transpose(0, 1).flatten(1)
    return z.mean(1), z.std(1)


@torch.no_grad()
def fold_latent_normalisation(vae: nn.Module, m: torch.Tensor, s: torch.Tensor, stats) -> None:
    """Make (mu' - M) / S = ((mu - M) / S - m) / s exactly, with the decoder seeing the same input:
    mu' = M + (mu - M - S m) / s  (conv1, first 16 outputs; log-variance shifts by -2 log s),
    conv2'(mu') = conv2(s mu' + M + S m - s M)."""
    big_m, big_s = (t.to(m.device, torch.float32) for t in stats)
    c = LATENT_CHANNELS
    w1, b1 = vae.conv1.weight, vae.conv1.bias  # (2c, 2c, 1, 1, 1)
    scale = (1 / s).to(w1.dtype)
    w1[:c] *= scale.view(-1, 1, 1, 1, 1)
    b1[:c] = ((b1[:c].float() - big_m - big_s * m) / s + big_m).to(b1.dtype)
    b1[c:] = (b1[c:].float() - 2 * torch.log(s)).to(b1.dtype)
    w2, b2 = vae.conv2.weight, vae.conv2.bias  # (c, c, 1, 1, 1)
    shift = big_m + big_s * m - s * big_m
    b2[:] = (b2.float() + w2[:, :, 0, 0, 0].float() @ shift).to(b2.dtype)
    w2 *= s.to(w2.dtype).view(1, -1, 1, 1, 1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio of two [0, 1] tensors, in dB."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


@torch.no_grad()
def reconstruct(vae: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Encode (mean) and decode (B, T, H, W, 3) clips the way ComfyUI's VAE nodes do."""
    out = vae.decode(vae.encode(clips_to_pixels(clips)))
    return ((out.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1)
