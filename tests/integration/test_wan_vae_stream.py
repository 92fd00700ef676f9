"""Chunk-wise decoding with the causal cache equals ComfyUI's one-piece VAE decode (no VAE seam)."""

import comfy.sd
import comfy.utils
import torch
from tiny_models import REPO, WAN21_VAE, tiny_name

from rtv.sampling.wan_vae_stream import StreamingWanDecoder

VAE_PATH = REPO / ".host" / "models" / "vae" / tiny_name(WAN21_VAE)


def test_streaming_decode_is_identical_to_one_decode():
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    latents = torch.randn(1, 16, 7, 6, 8, generator=torch.Generator().manual_seed(0))
    whole = vae.decode(latents).reshape(-1, 48, 64, 3)
    decoder = StreamingWanDecoder(vae)
    assert StreamingWanDecoder.supports(vae)
    parts = [decoder.push(latents[:, :, :3]), decoder.push(latents[:, :, 3:4]), decoder.push(latents[:, :, 4:])]
    streamed = torch.cat(parts)
    assert [p.shape[0] for p in parts] == [9, 4, 12]
    assert streamed.shape == whole.shape == (25, 48, 64, 3)
    assert torch.equal(streamed, whole)


def test_frame_by_frame_decode_interleaved_with_other_work_is_identical():
    """The causal sampler's overlapped decode: a chunk advanced a latent frame at a time, finished later."""
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    latents = torch.randn(1, 16, 5, 6, 8, generator=torch.Generator().manual_seed(1))
    whole = vae.decode(latents).reshape(-1, 48, 64, 3)
    decoder = StreamingWanDecoder(vae, side_stream=True)  # no CUDA here: the same calls, one stream
    first = decoder.start(latents[:, :, :3])
    assert first.advance_if_loaded() and not first.done  # one latent frame enqueued, two left
    parts = [first.finish()]
    second = decoder.start(latents[:, :, 3:])
    while second.advance_if_loaded():
        pass
    assert second.done
    parts.append(second.finish())
    assert torch.equal(torch.cat(parts), whole)
