"""Wan 2.2 TI2V 5B: a tiny random DiT through ComfyUI's real detection and loader, with the full-size Wan 2.2 VAE.

The 5B model differs from Wan 2.1 in what the pack reads from a model, not in its attention: 48 latent channels,
a VAE with 16x spatial compression (32 frame pixels per token), and a start frame given through the noise mask
(ComfyUI's ``WAN22`` turns the mask into per-frame timesteps) instead of concatenated image channels. So the
Monarch patch must stay exact with a pinned start frame, the streaming sampler must read the 48-channel layout
and pin its overlaps the same way, and the Wan 2.1-only paths must refuse the model with a clear error.
"""

import comfy.sample
import comfy.sd
import comfy.utils
import pytest
import torch
from tiny_models import REPO, TEXT_DIM, WAN22_CHANNELS, WAN22_VAE, tiny_name

from rtv.patches.attention import MonarchSettings, apply_monarch_attention
from rtv.sampling import streaming
from rtv.sampling.causal import CausalStreamingSampler
from rtv.sampling.causal_schedule import plan_causal_chunks
from rtv.sampling.chunk_plan import plan_chunks
from rtv.sampling.streaming import StreamingSampler, StreamSettings

LATENT = (1, WAN22_CHANNELS, 3, 8, 12)  # 3 latent frames of 4 x 6 tokens (patch 1 x 2 x 2)
ROWS = 4
STEPS = 2
VAE_PATH = REPO / ".host" / "models" / "vae" / tiny_name(WAN22_VAE)
# 64 x 64 pixels are 4 x 4 latents, 2 x 2 tokens: the full-size VAE decodes ~1.5 frames a second on the CPU.
SETTINGS = StreamSettings(width=64, height=64, steps=2, cfg=2.0, sampler_name="euler", scheduler="simple")


def _conditioning(seed: int) -> list:
    return [[torch.randn(1, 16, TEXT_DIM, generator=torch.Generator().manual_seed(seed)), {}]]


def _sample(model, latent=None, noise_mask=None, seed=5):
    latent = torch.zeros(LATENT) if latent is None else latent
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, STEPS, 2.0, "euler", "simple", _conditioning(0), _conditioning(1),
                               latent, noise_mask=noise_mask, seed=seed, disable_pbar=True)  # fmt: skip


def _stats(model):
    return model.model_options["transformer_options"]["optimized_attention_override"].__self__.stats


@pytest.fixture(scope="module")
def vae():
    return comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))


def test_it_loads_as_wan22_with_48_channel_latents_and_the_wan22_vae(tiny_wan22_5b, vae):
    assert type(tiny_wan22_5b.model).__name__ == "WAN22"
    assert tiny_wan22_5b.get_model_object("latent_format").latent_channels == WAN22_CHANNELS
    assert (vae.latent_channels, vae.spacial_compression_encode(), vae.temporal_compression_decode()) == (48, 16, 4)
    layout = streaming.latent_layout(tiny_wan22_5b, vae)
    assert (layout.family, layout.channels, layout.spatial_stride, layout.pixel_multiple) == ("Wan", 48, 16, 32)


def test_monarch_is_exact_with_one_row_per_tile_and_a_start_frame_in_the_noise_mask(tiny_wan22_5b):
    """TI2V: latent frame 0 is a given image (mask 0), the rest is generated; WAN22 gives frame 0 timestep 0."""
    start = torch.zeros(LATENT)
    start[:, :, :1] = torch.randn(1, WAN22_CHANNELS, 1, *LATENT[3:], generator=torch.Generator().manual_seed(2))
    mask = torch.ones(1, 1, *LATENT[2:])
    mask[:, :, :1] = 0
    dense = _sample(tiny_wan22_5b, start, mask)
    exact = apply_monarch_attention(tiny_wan22_5b, MonarchSettings(h_split=ROWS))
    exact_out = _sample(exact, start, mask)
    plain = _sample(apply_monarch_attention(tiny_wan22_5b, MonarchSettings(exact_local=-1)), start, mask)
    stats = _stats(exact)
    assert torch.allclose(exact_out, dense, rtol=1e-4, atol=1e-4 * dense.abs().max().item())
    assert (plain - dense).abs().max() > 1e-3 * dense.abs().max()
    assert stats.model_calls >= STEPS and stats.dense == 0 and stats.replaced == 2 * stats.model_calls


def test_a_split_that_does_not_fit_speaks_in_32_pixel_tokens(tiny_wan22_5b):
    with pytest.raises(ValueError, match=r"w_split=4 does not divide the 6 token columns.*pixels / 32"):
        _sample(apply_monarch_attention(tiny_wan22_5b, MonarchSettings(w_split=4)))


def test_it_streams_from_a_start_image_with_pinned_overlaps_decoded_by_the_wan22_vae(tiny_wan22_5b, vae):
    """TI2V: the start image (another size: scaled and centre-cropped first) is chunk 0's pinned first latent;
    anchor memory (Wan's) puts it in front of chunk 1 too."""
    plan = plan_chunks(13, 9, 5, seed=3)
    start_image = torch.rand(1, 48, 80, 3, generator=torch.Generator().manual_seed(4))
    fitted = comfy.utils.common_upscale(start_image.movedim(-1, 1), 64, 64, "bilinear", "center").movedim(1, -1)
    assert (plan.chunk_latents, plan.overlap_latents, len(plan.chunks)) == (3, 1, 2)
    seen = []

    class Record(streaming.ChunkHooks):
        def chunk_finished(self, plan, report, frames, chunk_latents):
            seen.append(chunk_latents.clone())

    anchored = StreamSettings(**{**SETTINGS.__dict__, "anchor_strength": 0.5})  # chunk 0's first latent in chunk 1
    result = StreamingSampler(tiny_wan22_5b, _conditioning(0), _conditioning(1), vae, plan, anchored, start_image,
                              hooks=Record()).run()  # fmt: skip
    assert torch.equal(seen[0][:, :, :1], vae.encode(fitted).float())
    assert result.images.shape == (13, 64, 64, 3) and torch.isfinite(result.images).all()
    assert result.latents.shape == (1, WAN22_CHANNELS, plan.total_latents, 4, 4)
    assert torch.equal(seen[1][:, :, 1:2], seen[0][:, :, 2:3])  # the overlap latent is held fixed


def test_the_wan21_only_paths_refuse_it_and_say_what_to_use(tiny_wan22_5b, vae):
    i2v = StreamSettings(**{**SETTINGS.__dict__, "overlap_mode": "i2v_start_frames"})
    with pytest.raises(ValueError, match="needs an image-to-video Wan model"):  # its start frame is a pinned latent
        StreamingSampler(tiny_wan22_5b, _conditioning(0), _conditioning(1), vae, plan_chunks(13, 9, 5), i2v)
    odd = StreamSettings(**{**SETTINGS.__dict__, "width": 48})
    with pytest.raises(ValueError, match="multiples of 32 for Wan"):
        StreamingSampler(tiny_wan22_5b, _conditioning(0), _conditioning(1), vae, plan_chunks(13, 9, 5), odd)
    with pytest.raises(ValueError, match="causal sampler runs Wan 2.1.*48-channel latents.*Streaming Sampler"):
        CausalStreamingSampler(tiny_wan22_5b, _conditioning(0), None, plan_causal_chunks(9, 3), [1.0, 0.5], 64, 64)
