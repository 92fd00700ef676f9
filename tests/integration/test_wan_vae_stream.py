"""Chunk-wise decoding with the causal cache equals ComfyUI's one-piece VAE decode (no VAE seam)."""

import comfy.sd
import comfy.utils
import pytest
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


def test_frames_moved_off_the_device_early_are_still_identical(monkeypatch):
    """A long push moves decoded frames to the output device past a byte budget: same frames."""
    import rtv.sampling.wan_vae_stream as stream

    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    latents = torch.randn(1, 16, 4, 6, 8, generator=torch.Generator().manual_seed(2))
    whole = vae.decode(latents).reshape(-1, 48, 64, 3)
    monkeypatch.setattr(stream, "DEVICE_FRAMES_BYTES", 48 * 64 * 3 * 4)  # past it after every latent frame
    moved = []
    original = stream.ChunkDecode._move_outputs
    monkeypatch.setattr(stream.ChunkDecode, "_move_outputs", lambda self: (moved.append(1), original(self)))
    assert torch.equal(StreamingWanDecoder(vae).push(latents), whole)
    assert len(moved) >= 3


def test_fused_decode_equals_one_decode_up_to_rounding():
    """The fused residual blocks (torch reference passes here; Triton on CUDA) on ComfyUI's weights
    and cache: each conv's bias moves into the next pass, so equal up to float32 rounding."""
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    latents = torch.randn(1, 16, 7, 6, 8, generator=torch.Generator().manual_seed(4))
    whole = vae.decode(latents).reshape(-1, 48, 64, 3)
    decoder = StreamingWanDecoder(vae, fused=True)
    assert decoder.fused and not StreamingWanDecoder(vae).fused  # on the CPU only when asked
    parts = [decoder.push(latents[:, :, :1]), decoder.push(latents[:, :, 1:4]), decoder.push(latents[:, :, 4:])]
    streamed = torch.cat(parts)
    assert [p.shape[0] for p in parts] == [1, 12, 12]
    assert whole.std() > 0.05  # not a flat image: the comparison can fail
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)


def test_fused_decode_falls_back_to_comfy_code_for_unknown_blocks(monkeypatch):
    """A residual block of another shape runs ComfyUI's own forward on the same cache: same frames."""
    import rtv.sampling.wan_vae_fused as fused

    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    latents = torch.randn(1, 16, 3, 6, 8, generator=torch.Generator().manual_seed(5))
    whole = vae.decode(latents).reshape(-1, 48, 64, 3)
    calls = []
    monkeypatch.setattr(fused, "fusable_residual_block", lambda block: calls.append(block) and False)
    torch.testing.assert_close(StreamingWanDecoder(vae, fused=True).push(latents), whole, rtol=0, atol=1e-5)
    assert len(calls) == 3 * sum(isinstance(m, fused.ResidualBlock) for m in vae.first_stage_model.decoder.modules())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the channels-last decode path runs on CUDA only")
def test_channels_last_decode_on_cuda_matches_one_decode():
    """On CUDA the streamed decode runs channels-last-3d (other cuDNN kernels) with the fused passes:
    close, not identical."""
    # integration tests run ComfyUI with --cpu; the VAE is put on the GPU explicitly, and one CUDA
    # allocation first gives ComfyUI's free-memory query the allocator statistics it reads
    torch.zeros(1, device="cuda")
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)), device=torch.device("cuda"))
    assert vae.device.type == "cuda"
    latents = torch.randn(1, 16, 7, 6, 8, generator=torch.Generator().manual_seed(3))
    whole = vae.decode(latents).reshape(-1, 48, 64, 3).float()
    decoder = StreamingWanDecoder(vae)
    assert decoder.fused  # the Triton passes of kernels/wan_vae
    parts = [decoder.push(latents[:, :, :3]), decoder.push(latents[:, :, 3:])]
    assert all(part.is_pinned() for part in parts)  # handed over through page-locked memory
    streamed = torch.cat(parts)
    conv_weights = [p for p in vae.first_stage_model.decoder.parameters() if p.dim() == 5]
    assert conv_weights and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in conv_weights)
    assert streamed.device == whole.device == vae.output_device
    assert streamed.shape == whole.shape and whole.std() > 0.05  # not a flat image: the check can fail
    torch.testing.assert_close(streamed.float(), whole, rtol=0, atol=3e-2)
