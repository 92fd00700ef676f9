"""The reference model's DiT: ComfyUI's own Wan 2.1 ``WanModel`` (T2V) at a small size, trained by
rectified flow exactly as ComfyUI samples Wan 2.1.

ComfyUI runs Wan 2.1 as ``ModelType.FLOW`` with ``ModelSamplingDiscreteFlow(shift=8)``
(supported_models.WAN21_T2V, model_base.WAN21, model_sampling.CONST):

    x_sigma  = sigma * noise + (1 - sigma) * x0          (noise_scaling)
    timestep = 1000 * sigma                              (what WanModel receives)
    x0_hat   = x_sigma - sigma * model_output            (calculate_denoised)

so the model predicts the velocity ``noise - x0``. Training draws sigma the way the sampler visits
it (uniform t through Wan's shift, ``sigma = shift t / (1 + (shift - 1) t)``) mixed with uniform
sigma so the low-noise end, where detail is settled, is seen too. ``sample_euler`` is ComfyUI's
KSampler "euler" with the "simple" scheduler and classifier-free guidance, so the trainer's metrics
predict what a stock ComfyUI graph produces with these weights.

ComfyUI's model_detection derives num_heads = dim / 128, so dim is a multiple of 128 (head dim 128,
as the real models). The text path keeps Wan's 4096-wide input and 512 tokens (see
kernels/reference_prompts.py): model_detection does not read text_dim, it assumes 4096.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

WAN21_SHIFT = 8.0
"""supported_models.WAN21_T2V.sampling_settings: what a stock KSampler uses for this model."""
TIMESTEP_MULTIPLIER = 1000
SCHEDULE_POINTS = 1000
"""ModelSamplingDiscreteFlow tabulates sigma at t = 1/1000 ... 1000/1000; "simple" picks from it."""
HEAD_DIM = 128
UNIFORM_SIGMA_SHARE = 0.3


def build_dit(dim: int, ffn_dim: int, layers: int, seed: int) -> nn.Module:
    import comfy.ldm.wan.model as wan
    import comfy.ops

    if dim % HEAD_DIM:
        raise ValueError(f"dim {dim} must be a multiple of {HEAD_DIM}: ComfyUI reads num_heads = dim / 128")
    torch.manual_seed(seed)
    model = wan.WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=dim, ffn_dim=ffn_dim,
                         freq_dim=256, text_dim=4096, out_dim=16, num_heads=dim // HEAD_DIM, num_layers=layers,
                         qk_norm=True, cross_attn_norm=True, eps=1e-6, operations=comfy.ops.disable_weight_init)
    init_dit(model)
    return model


@torch.no_grad()
def init_dit(model: nn.Module) -> None:
    """Wan's own initialisation (ComfyUI's ops skip it): Xavier linears with zero bias, small normal
    text and time embeddings, unit norms, modulation ~ N(0, 1/dim), and a zero output head so that
    training starts from a zero velocity."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            if name.startswith(("text_embedding", "time_embedding")):
                nn.init.normal_(m.weight, std=0.02)
            else:
                nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv3d):
            nn.init.xavier_uniform_(m.weight.flatten(1))
            nn.init.zeros_(m.bias)
    for name, p in model.named_parameters():
        if "norm" in name and name.endswith(".weight") and p.ndim == 1:
            nn.init.ones_(p)
        elif "norm" in name and name.endswith(".bias"):
            nn.init.zeros_(p)
        elif name.endswith("modulation"):
            p.copy_(torch.randn_like(p) / model.dim**0.5)
    nn.init.zeros_(model.head.head.weight)
    nn.init.zeros_(model.head.head.bias)


def shift_sigma(t: torch.Tensor, shift: float = WAN21_SHIFT) -> torch.Tensor:
    """comfy.model_sampling.time_snr_shift."""
    return shift * t / (1 + (shift - 1) * t)


def training_sigmas(batch: int, device, generator=None, shift: float = WAN21_SHIFT) -> torch.Tensor:
    u = torch.rand(batch, device=device, generator=generator)
    uniform = torch.rand(batch, device=device, generator=generator) < UNIFORM_SIGMA_SHARE
    sigma = torch.where(uniform, u, shift_sigma(u, shift))
    return sigma.clamp(1e-3, 1.0)


def flow_matching_loss(model: nn.Module, x0: torch.Tensor, context: torch.Tensor, generator=None) -> torch.Tensor:
    sigma = training_sigmas(len(x0), x0.device, generator)
    noise = torch.randn(x0.shape, device=x0.device, generator=generator)
    s = sigma.view(-1, 1, 1, 1, 1)
    x_sigma = s * noise + (1 - s) * x0
    velocity = model(x_sigma, sigma * TIMESTEP_MULTIPLIER, context)
    return ((velocity.float() - (noise - x0)) ** 2).mean()


def simple_schedule(steps: int, shift: float = WAN21_SHIFT) -> torch.Tensor:
    """comfy.samplers.simple_scheduler on ModelSamplingDiscreteFlow(shift): steps + 1 sigmas, 1 -> 0."""
    table = shift_sigma(torch.arange(1, SCHEDULE_POINTS + 1, dtype=torch.float32) / SCHEDULE_POINTS, shift)
    stride = SCHEDULE_POINTS / steps
    return torch.tensor([float(table[-(1 + int(i * stride))]) for i in range(steps)] + [0.0])


@torch.no_grad()
def sample_euler(model: nn.Module, context: torch.Tensor, uncond: torch.Tensor, shape: tuple, steps: int,
                 cfg: float, generator: torch.Generator, shift: float = WAN21_SHIFT) -> torch.Tensor:
    """KSampler(sampler "euler", scheduler "simple") from pure noise (sigma_max = 1 for Wan's shift):
    the denoised estimate under CFG, then x += (sigma_next - sigma) * (x - x0_hat) / sigma."""
    device = context.device
    x = torch.randn(shape, generator=generator, device="cpu").to(device)
    sigmas = simple_schedule(steps, shift).to(device)
    both = torch.cat([context, uncond.expand_as(context)])
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        t = (sigma * TIMESTEP_MULTIPLIER).expand(2 * len(x))
        v_cond, v_uncond = model(torch.cat([x, x]), t, both).float().chunk(2)
        denoised = x - sigma * (v_uncond + cfg * (v_cond - v_uncond))
        x = x + (sigma_next - sigma) * (x - denoised) / sigma
    return x


class EMA:
    """Exponential moving average of the weights, with the usual warm-up (1 + n) / (10 + n)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1 - d)


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to ``floor`` of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
