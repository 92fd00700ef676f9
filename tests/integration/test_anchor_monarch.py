"""Anchor memory under Monarch attention: the context frames become exact extra keys with the anchor's bias.

Anchor memory puts chunk 0's first latent in front of later chunks and weights its keys by ``anchor_strength``
s through an additive attention mask (log s on those keys, ``patches/anchor.py``). Monarch attention reads that
mask: the context frames leave the Monarch grid and are attended exactly as extra keys whose logits carry log s
(``extra_bias``), merged by log-sum-exp; their own queries attend everything densely with the mask. With one
token row per tile the patched stream must therefore equal the unpatched one, every self-attention replaced.
"""

import comfy.sd
import comfy.utils
import torch
from tiny_models import REPO, TEXT_DIM, WAN21_VAE, tiny_name, tiny_wan_state_dict

from rtv.patches.attention import MonarchSettings, apply_monarch_attention
from rtv.sampling.chunk_plan import plan_chunks
from rtv.sampling.streaming import StreamingSampler, StreamSettings

VAE_PATH = REPO / ".host" / "models" / "vae" / tiny_name(WAN21_VAE)
SETTINGS = StreamSettings(width=64, height=48, steps=2, cfg=2.0, sampler_name="euler", scheduler="simple",
                          anchor_strength=0.4)  # fmt: skip
PLAN = plan_chunks(17, 9, 5, seed=3)  # 3 chunks: the last two carry the anchor frame
ROWS = 3  # 48 px / 8 (VAE) / 2 (patch)
BLOCKS = 2


def _conditioning(seed: int) -> list:
    return [[torch.randn(1, 16, TEXT_DIM, generator=torch.Generator().manual_seed(seed)), {}]]


def _stream(model, vae):
    return StreamingSampler(model, _conditioning(0), _conditioning(1), vae, PLAN, SETTINGS).run()


def _stats(model):
    return model.model_options["transformer_options"]["optimized_attention_override"].__self__.stats


def test_anchored_stream_under_exact_monarch_equals_the_dense_stream_with_every_call_replaced():
    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=0))
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    dense = _stream(model, vae).latents
    exact_model = apply_monarch_attention(model, MonarchSettings(h_split=ROWS))
    exact = _stream(exact_model, vae).latents
    stats = _stats(exact_model)
    plain = _stream(apply_monarch_attention(model, MonarchSettings(exact_local=-1)), vae).latents
    assert torch.allclose(exact, dense, rtol=1e-4, atol=1e-4 * dense.abs().max().item())
    assert stats.dense == 0 and stats.replaced == BLOCKS * stats.model_calls
    assert (plain - dense).abs().max() > 1e-3 * dense.abs().max()
    unanchored = StreamSettings(**{**SETTINGS.__dict__, "anchor_strength": 0.0})
    baseline = StreamingSampler(model, _conditioning(0), _conditioning(1), vae, PLAN, unanchored).run().latents
    assert (baseline - dense).abs().max() > 1e-3 * dense.abs().max()  # the anchor is in play
