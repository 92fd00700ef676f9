"""Random-weight DiTs at real sizes, built through ComfyUI's own model classes (bench helpers).

Speed does not depend on weight values, so the benches time ComfyUI's ``WanModel`` at the released
sizes with random weights (norms at 1, biases at 0, fan-in scaled matrices), loaded through
``comfy.sd.load_diffusion_model_state_dict`` exactly as a downloaded checkpoint would be.
"""

from __future__ import annotations

WAN_1_3B = dict(dim=1536, ffn_dim=8960, num_layers=30, num_heads=12)
WAN_14B = dict(dim=5120, ffn_dim=13824, num_layers=40, num_heads=40)
TEXT_TOKENS = 512
TEXT_DIM = 4096


def random_wan_state_dict(config: dict, dtype, device, seed: int = 0) -> dict:
    """Weights of a Wan T2V DiT of ``config``, built on ``device`` one tensor at a time."""
    import comfy.ldm.wan.model as wan
    import comfy.ops
    import torch

    with torch.device("meta"):
        dit = wan.WanModel(model_type="t2v", patch_size=(1, 2, 2), in_dim=16, out_dim=16, freq_dim=256,
                           text_dim=TEXT_DIM, qk_norm=True, cross_attn_norm=True,
                           operations=comfy.ops.disable_weight_init, **config)  # fmt: skip
    return random_state_dict(dit, dtype, device, seed)


def random_state_dict(meta_module, dtype, device, seed: int = 0) -> dict:
    """Random weights for every tensor of a module built on the meta device: norms at 1, biases at 0,
    fan-in scaled matrices (so activations keep their scale through the blocks)."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    sd = {}
    for name, p in meta_module.state_dict().items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "bias" and p.ndim == 1:
            t = torch.zeros(p.shape, device=device, dtype=dtype)
        elif p.ndim == 1 and (leaf == "weight" or "norm" in name):
            t = torch.ones(p.shape, device=device, dtype=dtype)
        else:
            fan_in = p[0].numel() if p.ndim > 1 else p.shape[-1]
            t = (torch.randn(p.shape, generator=g, device=device) * fan_in**-0.5).to(dtype)
        sd[name] = t
    return sd
