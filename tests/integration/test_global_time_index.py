"""Global time index: the RoPE positions Wan receives in each chunk of the streaming sampler.

The frames of chunk k sit at global latent indices k(a-m) ... k(a-m)+a, and the anchor frame taken from
chunk 0 keeps its own global index 0 in front of them. Recorded at ComfyUI's rope embedder, i.e. the
position ids the model actually rotates q and k with.
"""

import comfy.sd
import comfy.utils
import torch
from tiny_models import REPO, TEXT_DIM, WAN21_VAE, tiny_name, tiny_wan_state_dict

from rtv.sampling.chunk_plan import plan_chunks
from rtv.sampling.streaming import StreamingSampler, StreamSettings

VAE_PATH = REPO / ".host" / "models" / "vae" / tiny_name(WAN21_VAE)


class RecordingEmbedder(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.frame_ids = []

    def forward(self, ids):
        self.frame_ids.append(sorted({round(float(t), 3) for t in ids[0, :, 0]}))
        return self.inner(ids)


def _run(anchor_strength: float):
    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=0))
    recorder = RecordingEmbedder(model.get_model_object("diffusion_model.rope_embedder"))
    model.add_object_patch("diffusion_model.rope_embedder", recorder)
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 8, TEXT_DIM, generator=g), {}]]
    negative = [[torch.zeros(1, 8, TEXT_DIM), {}]]
    plan = plan_chunks(17, 9, 5, seed=1)  # 3 chunks of 3 latents, m = 1: global offsets 0, 1, 2
    settings = StreamSettings(width=32, height=32, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                              anchor_strength=anchor_strength)
    StreamingSampler(model, positive, negative, vae, plan, settings).run()
    return recorder.frame_ids


def test_chunk_frames_carry_their_global_latent_index():
    assert _run(anchor_strength=0.0) == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]


def test_anchor_frame_keeps_global_index_zero_in_front_of_later_chunks():
    assert _run(anchor_strength=1.0) == [[0, 1, 2], [0, 1, 2, 3], [0, 2, 3, 4]]
