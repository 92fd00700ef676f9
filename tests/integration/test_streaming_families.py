"""The streaming sampler on HunyuanVideo and LTX-Video models, and its decoder for VAEs other than Wan 2.1's.

A tiny random HunyuanVideo DiT through ComfyUI's loader streams a video in overlapping chunks with its
own sampler; HunyuanVideo latents have Wan's layout (16 channels, 8x spatial, 4x causal temporal), so
the tiny Wan 2.1 VAE decodes them here (no HunyuanVideo VAE can be built small in ComfyUI 0.3.75).
``ChunkDecoder`` serves every other VAE; it is checked against the Wan VAE's one-piece decode.
"""

import comfy.sample
import comfy.sd
import comfy.utils
import pytest
import torch
from tiny_models import (
    HUNYUAN_VIDEO15_VAE,
    REPO,
    WAN21_VAE,
    hunyuan_conditioning,
    hunyuan_video15_conditioning,
    ltxv_conditioning,
    tiny_name,
)

from rtv.sampling import streaming
from rtv.sampling.chunk_decode import ChunkDecoder
from rtv.sampling.chunk_plan import plan_chunks
from rtv.sampling.streaming import StreamingSampler, StreamSettings

VAE_PATH = REPO / ".host" / "models" / "vae" / tiny_name(WAN21_VAE)
SETTINGS = StreamSettings(width=96, height=64, steps=2, cfg=2.0, sampler_name="euler", scheduler="simple")


class RecordChunks(streaming.ChunkHooks):
    """Keeps each finished chunk's latents."""

    def __init__(self):
        self.latents = []

    def chunk_finished(self, plan, report, frames, chunk_latents):
        self.latents.append(chunk_latents.clone())


@pytest.fixture(scope="module")
def vae():
    return comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))


def _stream(model, vae, conditioning, plan, settings=SETTINGS):
    return StreamingSampler(model, conditioning(0), conditioning(1), vae, plan, settings).run()


def test_chunk_decoder_keeps_exactly_the_new_latents_frames(vae):
    latents = torch.randn(1, 16, 6, 4, 6, generator=torch.Generator().manual_seed(0))
    decoder = ChunkDecoder(vae)
    whole = vae.decode(latents).reshape(-1, 32, 48, 3)
    assert torch.equal(decoder.push_chunk(latents, 0, 6), whole)  # chunk 0: every frame
    tail = decoder.push_chunk(latents, 3, 6)  # latents 3..5 are new: frames 9..20
    assert tail.shape[0] == 12 and torch.equal(tail, whole[9:])


def test_hunyuan_video_streams_with_pinned_overlaps(tiny_hunyuan, vae):
    plan = plan_chunks(21, 13, 5, seed=3)
    hooks = RecordChunks()

    result = StreamingSampler(tiny_hunyuan, hunyuan_conditioning(0), hunyuan_conditioning(1), vae, plan, SETTINGS,
                              hooks=hooks).run()  # fmt: skip
    assert result.images.shape == (plan.total_frames, 64, 96, 3) and torch.isfinite(result.images).all()
    assert result.latents.shape[2] == plan.total_latents
    m, a = plan.overlap_latents, plan.chunk_latents - 1
    seen = hooks.latents
    for previous, current in zip(seen, seen[1:], strict=False):  # latents 1..m repeat the previous chunk's last m
        assert torch.equal(current[:, :, 1 : m + 1], previous[:, :, a - m + 1 : a + 1])


def test_the_chunk_decoder_streams_a_video_like_the_wan_decoder_in_its_first_chunk(tiny_hunyuan, vae, monkeypatch):
    plan = plan_chunks(21, 13, 5, seed=3)
    wan = _stream(tiny_hunyuan, vae, hunyuan_conditioning, plan)
    monkeypatch.setattr(streaming.StreamingWanDecoder, "supports", staticmethod(lambda vae: False))
    generic = _stream(tiny_hunyuan, vae, hunyuan_conditioning, plan)
    assert generic.images.shape == wan.images.shape
    assert torch.equal(generic.latents, wan.latents)  # sampling does not depend on the decoder
    assert torch.equal(generic.images[: plan.chunk_frames], wan.images[: plan.chunk_frames])
    assert torch.isfinite(generic.images).all()


def test_ltx_video_streams_with_its_own_vae_eight_frames_per_latent():
    """The tiny single-file LTX-Video checkpoint (transformer and a small VAE of the real geometry) through
    ComfyUI's checkpoint loader: chunks of 8a+1 frames overlapping by 8m+1, decoded by ChunkDecoder."""
    import comfy.sd
    from tiny_models import LTXV_2B_CHECKPOINT

    path = REPO / ".host" / "models" / "checkpoints" / tiny_name(LTXV_2B_CHECKPOINT)
    model, _, vae, *_ = comfy.sd.load_checkpoint_guess_config(str(path), output_clip=False)
    plan = plan_chunks(41, 25, 9, seed=2, temporal_stride=8)
    assert (plan.chunk_latents, plan.overlap_latents, len(plan.chunks)) == (4, 1, 2)
    settings = StreamSettings(width=128, height=96, steps=2, cfg=2.0, sampler_name="euler", scheduler="simple")
    hooks = RecordChunks()

    result = StreamingSampler(model, ltxv_conditioning(0), ltxv_conditioning(1), vae, plan, settings,
                              hooks=hooks).run()  # fmt: skip
    assert result.images.shape == (41, 96, 128, 3) and torch.isfinite(result.images).all()
    assert torch.equal(hooks.latents[1][:, :, 1:2], hooks.latents[0][:, :, 3:4])  # the overlap latent is held fixed
    assert result.latents.shape == (1, 128, plan.total_latents, 3, 4)
    with pytest.raises(ValueError, match="temporal_stride=8"):
        StreamingSampler(model, ltxv_conditioning(0), ltxv_conditioning(1), vae, plan_chunks(41, 25, 9), settings)
    wan_vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    with pytest.raises(ValueError, match="16-channel latents and the LTX-Video model takes 128: connect the model's own VAE"):
        StreamingSampler(model, ltxv_conditioning(0), ltxv_conditioning(1), wan_vae, plan, settings)


def test_hunyuan_video15_streams_with_its_own_vae(tiny_hunyuan15):
    """HunyuanVideo 1.5: 32-channel latents, 16x VAE, patch 1 (16 px per token), read from the model and the
    full-size random VAE (no smaller one loads; 64 x 64 keeps its CPU decode to seconds)."""
    hv15_vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH.parent / HUNYUAN_VIDEO15_VAE)))
    plan = plan_chunks(13, 9, 5, seed=3)
    settings = StreamSettings(**{**SETTINGS.__dict__, "width": 64, "height": 64})
    hooks = RecordChunks()

    result = StreamingSampler(tiny_hunyuan15, hunyuan_video15_conditioning(0), hunyuan_video15_conditioning(1),
                              hv15_vae, plan, settings, hooks=hooks).run()  # fmt: skip
    assert result.images.shape == (13, 64, 64, 3) and torch.isfinite(result.images).all()
    assert result.latents.shape == (1, 32, plan.total_latents, 4, 4)
    assert torch.equal(hooks.latents[1][:, :, 1:2], hooks.latents[0][:, :, 2:3])  # the overlap latent is held fixed
    # The image channels the sampler fills for HunyuanVideo 1.5 (see _with_empty_image_channels) are its plain
    # text-to-video input: chunk 0 (nothing pinned) is what ComfyUI's own sampler makes.
    empty = torch.zeros(1, 32, plan.chunk_latents, 4, 4)
    plain = comfy.sample.sample(tiny_hunyuan15, comfy.sample.prepare_noise(empty, plan.chunks[0].seed), 2, 2.0,
                                "euler", "simple", hunyuan_video15_conditioning(0), hunyuan_video15_conditioning(1),
                                empty, seed=plan.chunks[0].seed, disable_pbar=True)  # fmt: skip
    assert torch.equal(hooks.latents[0], plain)
    odd = StreamSettings(**{**settings.__dict__, "width": 72})
    with pytest.raises(ValueError, match="multiples of 16 for HunyuanVideo"):
        StreamingSampler(tiny_hunyuan15, hunyuan_video15_conditioning(0), hunyuan_video15_conditioning(1), hv15_vae,
                         plan, odd)  # fmt: skip


def test_what_the_streaming_sampler_does_for_wan_only_says_so(tiny_hunyuan, vae):
    plan = plan_chunks(21, 13, 5)
    anchored = StreamSettings(**{**SETTINGS.__dict__, "anchor_strength": 0.5})
    with pytest.raises(ValueError, match="set anchor_strength to 0 for this HunyuanVideo model"):
        _stream(tiny_hunyuan, vae, hunyuan_conditioning, plan, anchored)
    i2v = StreamSettings(**{**SETTINGS.__dict__, "overlap_mode": "i2v_start_frames"})
    with pytest.raises(ValueError, match="needs an image-to-video Wan model"):
        _stream(tiny_hunyuan, vae, hunyuan_conditioning, plan, i2v)
    odd = StreamSettings(**{**SETTINGS.__dict__, "width": 88})
    with pytest.raises(ValueError, match="multiples of 16 for HunyuanVideo"):
        _stream(tiny_hunyuan, vae, hunyuan_conditioning, plan, odd)
