"""The streaming sampler with Wan 2.2 A14B's two experts: the high-noise model runs each chunk's first steps,
the low-noise model the rest, as ComfyUI's two-KSamplerAdvanced template does for one clip.

Two tiny random Wan T2V DiTs stand in for the experts (A14B's experts have the Wan 2.1 14B architecture).
Splitting the schedule between two sampler calls must not change what one model would make, including on the
pinned overlap latents, which ComfyUI re-noises to each step's sigma: the second call gets their clean values and
noise again (``StreamingSampler._sample``), not the state at the switch.
"""

import comfy.sd
import comfy.utils
import pytest
import torch
from tiny_models import REPO, TEXT_DIM, WAN21_VAE, tiny_name, tiny_wan_state_dict

from rtv.sampling import streaming
from rtv.sampling.chunk_plan import plan_chunks
from rtv.sampling.streaming import StreamingSampler, StreamSettings

VAE_PATH = REPO / ".host" / "models" / "vae" / tiny_name(WAN21_VAE)
SETTINGS = StreamSettings(width=64, height=48, steps=4, cfg=2.0, sampler_name="euler", scheduler="simple",
                          low_noise_start_step=2)  # fmt: skip
PLAN = plan_chunks(17, 9, 5, seed=3)


def _conditioning(seed: int) -> list:
    return [[torch.randn(1, 16, TEXT_DIM, generator=torch.Generator().manual_seed(seed)), {}]]


@pytest.fixture(scope="module")
def experts():
    load = comfy.sd.load_diffusion_model_state_dict
    return load(tiny_wan_state_dict("t2v", seed=16)), load(tiny_wan_state_dict("t2v", seed=17))


@pytest.fixture(scope="module")
def vae():
    return comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))


class RecordChunks(streaming.ChunkHooks):
    def __init__(self):
        self.latents, self.steps = [], []

    def sampling_callback(self, chunk_index, steps):
        return lambda step, x0, x, total_steps: self.steps.append((chunk_index, step, total_steps))

    def chunk_finished(self, plan, report, frames, chunk_latents):
        self.latents.append(chunk_latents.clone())


def _stream(model, vae, settings=SETTINGS, model_low_noise=None, hooks=None):
    return StreamingSampler(model, _conditioning(0), _conditioning(1), vae, PLAN, settings, hooks=hooks,
                            model_low_noise=model_low_noise).run()  # fmt: skip


def test_one_model_as_both_experts_makes_the_single_model_video(experts, vae):
    high, _ = experts
    single = _stream(high, vae)
    split = _stream(high, vae, model_low_noise=high)
    assert torch.allclose(split.latents, single.latents, rtol=1e-4, atol=1e-4 * single.latents.abs().max().item())


def test_the_low_noise_expert_takes_over_at_its_step_with_progress_over_all_steps(experts, vae):
    high, low = experts
    hooks = RecordChunks()
    both = _stream(high, vae, model_low_noise=low, hooks=hooks)
    assert not torch.allclose(both.latents, _stream(high, vae).latents, atol=1e-3)
    assert [s[1] for s in hooks.steps if s[0] == 0] == [0, 1, 2, 3]  # one progress range over both calls
    assert all(total == SETTINGS.steps for _, _, total in hooks.steps)
    m, a = PLAN.overlap_latents, PLAN.chunk_latents - 1
    assert torch.equal(hooks.latents[1][:, :, 1 : m + 1], hooks.latents[0][:, :, a - m + 1 : a + 1])


def test_expert_settings_that_cannot_work_say_what_to_change(experts, vae, tiny_hunyuan):
    high, low = experts
    for step in (0, SETTINGS.steps):
        bad = StreamSettings(**{**SETTINGS.__dict__, "low_noise_start_step": step})
        with pytest.raises(ValueError, match="low_noise_start_step must be between 1 and steps - 1"):
            _stream(high, vae, bad, model_low_noise=low)
    with pytest.raises(ValueError, match="model_low_noise must be the same kind of model"):
        _stream(high, vae, model_low_noise=tiny_hunyuan)
