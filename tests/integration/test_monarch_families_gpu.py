"""The Monarch patch on the GPU inside real models: Triton kernels against the torch reference, per family.

The kernel tests (tests/unit/test_monarch_triton.py) compare the kernels with the reference on bare tensors. Here
tiny random DiTs of every family go through ComfyUI's loader and sampler on CUDA in bfloat16, patched with the
same settings twice, ``backend="triton"`` and ``backend="torch"``, so each family's token layout (text, glyph and
vision tokens, reference latents, guide frames, a pinned start frame) reaches the kernels as the node sends it.
One token row per tile must also reproduce the unpatched model (in float32).

ComfyUI runs on the CPU in the other integration tests (``conftest.py``); this module needs it on the GPU, so it
runs in a process of its own: ``RTV_COMFY_GPU=1 pytest -m gpu tests/integration/test_monarch_families_gpu.py``.
"""

import comfy.cli_args
import comfy.model_management
import comfy.sample
import comfy.sd
import pytest
import torch
from tiny_models import (
    TEXT_DIM,
    WAN22_CHANNELS,
    hunyuan_conditioning,
    hunyuan_video15_conditioning,
    ltxv_conditioning,
    tiny_hunyuan_video15_state_dict,
    tiny_hunyuan_video_state_dict,
    tiny_ltxv_state_dict,
    tiny_wan_state_dict,
)

from rtv.patches.attention import MonarchSettings, apply_monarch_attention

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run with -m gpu on the lent H100)"),
    pytest.mark.skipif(comfy.cli_args.args.cpu, reason="ComfyUI runs on the CPU in this process: set RTV_COMFY_GPU=1"),
]
STEPS = 2
REL_L2_BF16 = 1e-2
SETTINGS = {"node_default": {}, "plain": {"exact_local": -1}, "h_split_2_iterations_2": {"h_split": 2, "iterations": 2}}


def _wan_text(seed):
    return [[torch.randn(1, 16, TEXT_DIM, generator=torch.Generator().manual_seed(seed)), {}]]


def _hunyuan_padded_with_reference(seed):
    cond = hunyuan_conditioning(seed, tokens=8, padded_tokens=4 + seed)  # two mask lengths: two model calls
    cond[0][1]["ref_latent"] = torch.randn(1, 16, 1, 8, 12, generator=torch.Generator().manual_seed(3))
    return cond


def _hunyuan15_glyph_and_vision(seed):
    from types import SimpleNamespace

    cond = hunyuan_video15_conditioning(seed, tokens=8, byt5_tokens=3)
    vision = torch.randn(1, 5, 1152, generator=torch.Generator().manual_seed(4))
    cond[0][1]["clip_vision_output"] = SimpleNamespace(last_hidden_state=vision)
    return cond


def _ltxv_with_guide(seed):
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij")
    cond = ltxv_conditioning(seed)
    cond[0][1]["keyframe_idxs"] = torch.stack([torch.zeros(24), 32.0 * rows.flatten(), 32.0 * cols.flatten()])[None]
    return cond


def _start_frame_mask(shape):
    mask = torch.ones(1, 1, *shape[2:])
    mask[:, :, :1] = 0
    return mask


# family: (state dict builder, latent shape, token rows, conditioning, noise mask builder or None)
FAMILIES = {
    "wan21_t2v": (lambda: tiny_wan_state_dict("t2v"), (1, 16, 3, 12, 16), 6, _wan_text, None),
    "wan22_ti2v_5b": (lambda: tiny_wan_state_dict("ti2v_5b"), (1, WAN22_CHANNELS, 3, 8, 12), 4, _wan_text,
                      _start_frame_mask),
    "hunyuan_video": (tiny_hunyuan_video_state_dict, (1, 16, 3, 8, 12), 4, _hunyuan_padded_with_reference, None),
    "hunyuan_video15": (tiny_hunyuan_video15_state_dict, (1, 32, 3, 4, 6), 4, _hunyuan15_glyph_and_vision, None),
    # LTX-Video 2B's head width, 64 (the CPU tests' 4 has no Triton kernel: head widths 16-256)
    "ltxv": (lambda: tiny_ltxv_state_dict(head_dim=64), (1, 128, 3, 4, 6), 4, _ltxv_with_guide, None),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    build, shape, rows, conditioning, mask = FAMILIES[request.param]
    model = comfy.sd.load_diffusion_model_state_dict(build(), model_options={"dtype": torch.bfloat16})
    yield request.param, model, shape, rows, conditioning, mask
    comfy.model_management.unload_all_models()


def _sample(model, shape, conditioning, mask_builder, seed=5):
    latent = torch.zeros(shape)
    mask = None
    if mask_builder is not None:
        latent[:, :, :1] = torch.randn(1, shape[1], 1, *shape[3:], generator=torch.Generator().manual_seed(2))
        mask = mask_builder(shape)
    noise = comfy.sample.prepare_noise(latent, seed)
    out = comfy.sample.sample(model, noise, STEPS, 2.0, "euler", "simple", conditioning(0), conditioning(1), latent,
                              noise_mask=mask, seed=seed, disable_pbar=True)  # fmt: skip
    return out.float().cpu()


def _stats(model):
    return model.model_options["transformer_options"]["optimized_attention_override"].__self__.stats


def _rel_l2(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_triton_matches_the_torch_reference_inside_the_model(family, setting):
    name, model, shape, _, conditioning, mask = family
    outputs = {}
    for backend in ("triton", "torch"):
        patched = apply_monarch_attention(model, MonarchSettings(backend=backend, **SETTINGS[setting]))
        outputs[backend] = _sample(patched, shape, conditioning, mask)
        stats = _stats(patched)
        assert stats.replaced > 0 and stats.dense == 0, (name, backend)
    assert torch.isfinite(outputs["triton"]).all()
    assert _rel_l2(outputs["triton"], outputs["torch"]) < REL_L2_BF16, name


def test_one_row_per_tile_on_the_gpu_reproduces_the_unpatched_model_in_float32(family):
    """In float32 (where the kernels are held to 1e-3) so that bfloat16 rounding through the model cannot hide
    a wrong token layout: exact tiles must match the unpatched model far closer than plain Monarch does."""
    name, _, shape, rows, conditioning, mask = family
    model = comfy.sd.load_diffusion_model_state_dict(FAMILIES[name][0](), model_options={"dtype": torch.float32})
    dense = _sample(model, shape, conditioning, mask)
    exact_model = apply_monarch_attention(model, MonarchSettings(backend="triton", h_split=rows))
    exact = _sample(exact_model, shape, conditioning, mask)
    plain = _sample(apply_monarch_attention(model, MonarchSettings(backend="triton", exact_local=-1)), shape,
                    conditioning, mask)  # fmt: skip
    assert _stats(exact_model).replaced > 0 and _stats(exact_model).dense == 0, name
    assert _rel_l2(exact, dense) < 1e-3, name
    assert _rel_l2(plain, dense) > 10 * _rel_l2(exact, dense), name


def test_anchored_wan_stream_on_the_gpu_matches_the_torch_reference(tmp_path):
    """Anchor memory's context frame as biased extra keys (``extra_bias``) through the Triton kernels: a
    three-chunk stream of the tiny Wan model, Triton against the torch reference, bf16."""
    import comfy.utils
    from tiny_models import build_wan21_vae

    from rtv.sampling.chunk_plan import plan_chunks
    from rtv.sampling.streaming import StreamingSampler, StreamSettings

    model = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v"), model_options={"dtype": torch.bfloat16})
    build_wan21_vae(tmp_path / "vae.safetensors")  # built here: the GPU machine has no models folder
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(tmp_path / "vae.safetensors")))
    settings = StreamSettings(width=64, height=48, steps=2, cfg=2.0, sampler_name="euler", scheduler="simple",
                              anchor_strength=0.4)  # fmt: skip
    def stream(patched):
        return StreamingSampler(patched, _wan_text(0), _wan_text(1), vae, plan_chunks(17, 9, 5, seed=3),
                                settings).run().latents  # fmt: skip

    latents = {}
    for backend in ("triton", "torch"):
        patched = apply_monarch_attention(model, MonarchSettings(backend=backend))
        latents[backend] = stream(patched)
        assert _stats(patched).replaced > 0 and _stats(patched).dense == 0, backend
    assert _rel_l2(latents["triton"], latents["torch"]) < REL_L2_BF16
    # exact tiles: the unpatched model's masked attention, here as Triton plus the context queries' cuDNN parts
    exact = stream(apply_monarch_attention(model, MonarchSettings(backend="triton", h_split=3)))
    assert _rel_l2(exact, stream(model)) < REL_L2_BF16
