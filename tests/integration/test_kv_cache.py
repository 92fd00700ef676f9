"""KV-cache patch and causal sampler in process, on a tiny float32 Wan T2V DiT through ComfyUI's loader.

The reference for a chunk against its cache is ComfyUI's own WanModel run on the whole sequence with a
block-causal attention mask (an attention override on the marked self-attention calls), the earlier
chunks at timestep 0 (their clean pass) and the current chunk at its timestep.
"""

import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.samplers
import comfy.sd
import comfy.utils
import pytest
import torch
from comfy.k_diffusion.sampling import sample_lcm
from comfy_extras.nodes_custom_sampler import Guider_Basic
from tiny_models import REPO, TEXT_DIM, WAN21_VAE, tiny_name, tiny_wan_state_dict

from rtv.patches.attention import MonarchSettings, apply_monarch_attention
from rtv.patches.kv_cache import KVCacheState, apply_kv_cache
from rtv.patches.self_attention import BLOCK_MARK, mark_self_attention
from rtv.sampling.causal import CausalStreamingSampler, chunk_noise
from rtv.sampling.causal_schedule import causal_sigmas, plan_causal_chunks
from rtv.sampling.streaming import ChunkHooks

ROWS, COLS = 4, 4  # tokens per latent frame (latent 8 x 8, patch 2 x 2)
LATENT_HW = (2 * ROWS, 2 * COLS)
TEXT_TOKENS = 16
BLOCKS = 2
VAE_PATH = REPO / ".host" / "models" / "vae" / tiny_name(WAN21_VAE)


@pytest.fixture(scope="module")
def base():
    return comfy.sd.load_diffusion_model_state_dict(
        tiny_wan_state_dict("t2v", seed=0), model_options={"dtype": torch.float32}
    )


def _context(seed=1):
    return torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=torch.Generator().manual_seed(seed))


def _latents(frames, seed):
    return torch.randn(1, 16, frames, *LATENT_HW, generator=torch.Generator().manual_seed(seed))


def dit(patcher, x, timestep, context):
    """One forward of the patcher's WanModel the way sampling runs it (patches applied, wrappers merged)."""
    comfy.model_management.load_models_gpu([patcher])
    options = comfy.model_patcher.create_model_options_clone(patcher.model_options)
    comfy.sampler_helpers.prepare_model_patcher(patcher, {}, options)
    with torch.no_grad():
        return patcher.model.diffusion_model(
            x, timestep, context, transformer_options=options["transformer_options"]
        )


def masked_reference(base_model):
    """Clone whose video self-attention gets ``holder["mask"]`` (frame-level bool, True = may attend)."""
    m = base_model.clone()
    mark_self_attention(m)
    holder = {}

    def override(func, *args, **kwargs):
        if BLOCK_MARK in (kwargs.get("transformer_options") or {}):
            allowed = holder["mask"].repeat_interleave(ROWS * COLS, 0).repeat_interleave(ROWS * COLS, 1)
            bias = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
            kwargs = {**kwargs, "mask": bias}
        return func(*args, **kwargs)

    m.model_options["transformer_options"]["optimized_attention_override"] = override
    return m, holder


def causal_frame_mask(chunks, capacity=None, sinks=0):
    """Which key frame each query frame sees: its own chunk and earlier ones (rolling: sinks + recent)."""
    total = sum(chunks)
    allowed = torch.zeros(total, total, dtype=torch.bool)
    first = 0
    for n in chunks:
        own = slice(first, first + n)
        allowed[own, own] = True
        if capacity is None:
            allowed[own, :first] = True
        else:
            recent = capacity - n - min(sinks, first)
            allowed[own, : min(sinks, first)] = True
            allowed[own, max(min(sinks, first), first - recent) : first] = True
        first += n
    return allowed


def run_chunks_with_cache(base_model, chunks, clean, noisy, t, context, capacity=None, sinks=0, record=None):
    """Chunk by chunk through the KV-cache patch: a junk step, the real step (kept), the clean pass."""
    total = sum(chunks)
    state = KVCacheState(capacity or total, sinks)
    model = apply_kv_cache(base_model, state)
    if record is not None:
        model.add_object_patch(
            "diffusion_model.rope_embedder", record(model.get_model_object("diffusion_model.rope_embedder"))
        )
    outputs, first = [], 0
    for i, n in enumerate(chunks):
        own = slice(first, first + n)
        state.begin_chunk(first, n)
        dit(model, _latents(n, seed=100 + i), torch.tensor([700.0]), context)  # overwritten by the next call
        outputs.append(dit(model, noisy[:, :, own], torch.tensor([t]), context))
        dit(model, clean[:, :, own], torch.tensor([0.0]), context)
        state.end_chunk()
        outputs[-1] = (outputs[-1], list(state.cached_frames), state.cache_bytes())
        first += n
    return outputs, state


def reference_chunks(base_model, chunks, clean, noisy, t, context, capacity=None, sinks=0):
    ref, holder = masked_reference(base_model)
    holder["mask"] = causal_frame_mask(chunks, capacity, sinks)
    outputs, first = [], 0
    for n in chunks:
        own = slice(first, first + n)
        x = clean.clone()
        x[:, :, own] = noisy[:, :, own]
        timesteps = torch.zeros(1, clean.shape[2])
        timesteps[:, own] = t
        outputs.append(dit(ref, x, timesteps, context)[:, :, own])
        first += n
    return outputs


def _close(a, b):
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())


def test_a_chunk_against_its_cache_equals_the_block_causal_full_sequence(base):
    chunks = [2, 2, 1]
    clean, noisy, context = _latents(5, seed=2), _latents(5, seed=3), _context()
    cached, state = run_chunks_with_cache(base, chunks, clean, noisy, 625.0, context)
    reference = reference_chunks(base, chunks, clean, noisy, 625.0, context)
    for (out, _, _), ref in zip(cached, reference):
        assert out.shape == ref.shape
        assert _close(out, ref), (out - ref).abs().max()
    # every call overwrote the chunk's slots: keys never exceed the frames generated so far
    assert state.stats.max_key_frames == 5
    assert state.stats.calls_with_cached_keys == BLOCKS * 3 * 2  # chunks 1 and 2, three calls each
    assert state.stats.text_kv_computed == BLOCKS and state.stats.text_kv_reused == BLOCKS * (3 * 3 - 1)


def test_the_cache_matters_a_chunk_without_it_differs(base):
    chunks = [2, 2]
    clean, noisy, context = _latents(4, seed=2), _latents(4, seed=3), _context()
    cached, _ = run_chunks_with_cache(base, chunks, clean, noisy, 625.0, context)
    alone, _ = run_chunks_with_cache(base, [2], clean[:, :, 2:], noisy[:, :, 2:], 625.0, context)
    assert (cached[1][0] - alone[0][0]).abs().max() > 1e-3 * alone[0][0].abs().max()


class RecordRopeFrames(torch.nn.Module):
    """Stands in for WanModel.rope_embedder and records the temporal positions of every call."""

    seen: list = []

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, ids):
        RecordRopeFrames.seen.append(sorted({int(v) for v in ids[0, :, 0].tolist()}))
        return self.inner(ids)


def test_rolling_window_with_a_sink_is_exact_flat_in_memory_and_positions_keep_growing(base):
    chunks, capacity, sinks = [1] * 8, 4, 1
    clean, noisy, context = _latents(8, seed=4), _latents(8, seed=5), _context()
    RecordRopeFrames.seen = []
    cached, state = run_chunks_with_cache(
        base, chunks, clean, noisy, 833.3, context, capacity, sinks, record=RecordRopeFrames
    )
    reference = reference_chunks(base, chunks, clean, noisy, 833.3, context, capacity, sinks)
    for (out, _, _), ref in zip(cached, reference):
        assert _close(out, ref), (out - ref).abs().max()
    frames_in_cache = [frames for _, frames, _ in cached]
    assert frames_in_cache[:4] == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    assert frames_in_cache[-1] == [0, 5, 6, 7]  # the sink stays, the oldest others leave
    sizes = {size for _, _, size in cached}
    assert len(sizes) == 1  # allocated once for 4 frames, never grows
    assert state.stats.max_key_frames == capacity
    # three calls per chunk, each at the chunk's global frame: 0, 0, 0, 1, 1, 1, ..., 7
    assert RecordRopeFrames.seen == [[i] for i in range(8) for _ in range(3)]


def _sample_ordinary(model, positive, latent_frames, sigmas, seed):
    """ComfyUI's own few-step LCM sampling of the whole video (no cache), same noise."""
    latent = torch.zeros(1, 16, latent_frames, *LATENT_HW)
    noise, noise_sampler = chunk_noise(latent.shape, seed, torch.device("cpu"))
    guider = Guider_Basic(model)
    guider.set_conds(positive)
    sampler = comfy.samplers.KSAMPLER(sample_lcm, extra_options={"noise_sampler": noise_sampler})
    return guider.sample(noise, latent, sampler, torch.tensor(sigmas), disable_pbar=True, seed=seed)


def _causal(model, positive, total_frames, chunk, seed=7, window=-1, sinks=0, vae=None, **options):
    plan = plan_causal_chunks(total_frames, chunk, seed=seed, kv_window_frames=window, sink_frames=sinks)
    sampler = CausalStreamingSampler(
        model,
        positive,
        vae,
        plan,
        causal_sigmas("1000,750,500,250", 5.0),
        width=8 * LATENT_HW[1],
        height=8 * LATENT_HW[0],
        **options,
    )
    return sampler.run()


def test_one_chunk_covering_all_frames_equals_ordinary_bidirectional_generation(base):
    positive = [[_context(), {}]]
    sigmas = causal_sigmas("1000,750,500,250", 5.0)
    ordinary = _sample_ordinary(base, positive, 5, sigmas, seed=7)
    causal = _causal(base, positive, 17, chunk=5)
    assert len(causal.reports) == 1
    assert causal.latents.shape == ordinary.shape
    assert _close(causal.latents, ordinary), (causal.latents - ordinary).abs().max()


def test_sampler_rolling_window_keeps_cache_memory_flat_past_its_length(base):
    positive = [[_context(), {}]]
    rolling = _causal(base, positive, 41, chunk=2, window=5, sinks=1)  # 11 latent frames, 6 chunks
    everything = _causal(base, positive, 41, chunk=2)
    sizes = [r.working_bytes for r in rolling.reports]
    assert len(set(sizes)) == 1 and sizes[0] < everything.reports[-1].working_bytes
    assert [r.first_latent for r in rolling.reports] == [0, 2, 4, 6, 8, 10]
    assert rolling.reports[-1].cached_frames == [0, 7, 8, 9, 10]
    assert everything.reports[-1].cached_frames == list(range(11))
    assert rolling.latents.shape[2] == everything.latents.shape[2] == 11
    assert torch.equal(rolling.latents[:, :, :4], everything.latents[:, :, :4])  # the window is not full yet
    assert not torch.equal(rolling.latents[:, :, 8:], everything.latents[:, :, 8:])


def test_monarch_serves_the_cached_chunks_in_chunk_mode(base):
    positive = [[_context(), {}]]
    dense = _causal(base, positive, 21, chunk=2)
    exact_monarch = apply_monarch_attention(base, MonarchSettings(h_split=ROWS))
    exact = _causal(exact_monarch, positive, 21, chunk=2)
    stats = exact_monarch.model_options["transformer_options"]["optimized_attention_override"].__self__.stats
    # one row per tile is exact softmax attention, also for a chunk against cached keys
    assert _close(exact.latents, dense.latents), (exact.latents - dense.latents).abs().max()
    # the last chunk's run (stats reset per sampling run): 4 steps + the clean pass, all Monarch
    assert stats.model_calls == 5 and stats.dense == 0 and stats.replaced == BLOCKS * 5
    assert exact.kv_stats.calls_with_cached_keys == BLOCKS * 5 * 2  # chunks 1 and 2 (frames 2-3, 4-5)
    approximate = _causal(
        apply_monarch_attention(base, MonarchSettings(exact_local=-1)), positive, 21, chunk=2
    )
    assert (approximate.latents - dense.latents).abs().max() > 1e-3 * dense.latents.abs().max()


class _RecordingHooks(ChunkHooks):
    def __init__(self):
        self.events = []

    def chunk_started(self, plan, chunk_index):
        self.events.append(("started", chunk_index))

    def chunk_finished(self, plan, report, frames, chunk_latents):
        self.events.append(("finished", report.index, frames.shape[0]))


def test_overlapped_decode_gives_the_same_video_and_hands_each_chunk_out_one_chunk_later(base):
    """overlap_decode decodes chunk k during chunk k+1's steps (first chunk at once); same frames."""
    positive = [[_context(), {}]]
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(VAE_PATH)))
    serial = _causal(base, positive, 21, chunk=2, vae=vae)
    hooks = _RecordingHooks()
    overlapped = _causal(base, positive, 21, chunk=2, vae=vae, overlap_decode=True, hooks=hooks)
    assert torch.equal(overlapped.latents, serial.latents)
    assert torch.equal(overlapped.images, serial.images)
    assert [r.cached_frames for r in overlapped.reports] == [r.cached_frames for r in serial.reports]
    assert hooks.events == [
        ("started", 0), ("finished", 0, 5), ("started", 1), ("started", 2), ("finished", 1, 8),
        ("finished", 2, 8),
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------- fused block


@pytest.mark.parametrize("per_frame", [False, True], ids=["one_timestep", "per_frame_timesteps"])
def test_fused_block_forward_is_comfyuis_block_bit_for_bit(base, per_frame):
    """The causal sampler's block (patches/fused_block.py) runs ComfyUI's ops on the CPU: identical output;
    per-frame timesteps take ComfyUI's own forward."""
    from rtv.patches.fused_block import fusable_block, fused_block_forward

    dm = base.get_model_object("diffusion_model")
    block = dm.blocks[1]
    assert fusable_block(block)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(1, 30, dm.dim, generator=g)  # 2 latent frames of 3 x 5 tokens
    e = torch.randn(1, 2 if per_frame else 1, 6, dm.dim, generator=g) * 0.3
    freqs = dm.rope_encode(2, 6, 10, device="cpu", dtype=torch.float32)
    context = dm.text_embedding(_context(4))
    with torch.no_grad():
        expected = block(x, e=e, freqs=freqs, context=context, context_img_len=None, transformer_options={})
        got = fused_block_forward(block)(x, e=e, freqs=freqs, context=context, context_img_len=None,
                                         transformer_options={})  # fmt: skip
    assert torch.equal(got, expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="the fused Triton block steps run on CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_block_forward_on_cuda_matches_comfyuis_block(base, dtype):
    import copy

    from rtv.patches.fused_block import fused_block_forward

    dm = base.get_model_object("diffusion_model")
    block = copy.deepcopy(dm.blocks[1]).to("cuda", dtype)
    g = torch.Generator().manual_seed(12)
    x = torch.randn(1, 30, dm.dim, generator=g).to("cuda", dtype)
    e = (torch.randn(1, 1, 6, dm.dim, generator=g) * 0.3).to("cuda", dtype)
    freqs = dm.rope_encode(2, 6, 10, device="cuda", dtype=dtype)
    context = dm.text_embedding(_context(4)).to("cuda", dtype)
    with torch.no_grad():
        expected = block(x, e=e, freqs=freqs, context=context, context_img_len=None, transformer_options={})
        got = fused_block_forward(block)(x, e=e, freqs=freqs, context=context, context_img_len=None,
                                         transformer_options={})  # fmt: skip
    error = ((got.float() - expected.float()).norm() / expected.float().norm()).item()
    assert error < (1e-5 if dtype == torch.float32 else 1e-2), error


def test_mlp_gelu_moves_into_the_epilogue_only_for_stock_weights_used_as_stored(base):
    """Which MLPs may take the GELU in cuBLASLt's epilogue (patches/fused_block.py): decided on the CPU,
    where the MLP itself still runs ComfyUI's modules (bit-identical, tested above)."""
    import copy

    from rtv.patches.fused_block import block_mlp, gelu_in_epilogue, stock_tanh_mlp

    ffn = copy.deepcopy(base.get_model_object("diffusion_model").blocks[0].ffn)
    cpu = torch.device("cpu")
    assert stock_tanh_mlp(ffn, torch.float32, cpu)
    assert not stock_tanh_mlp(ffn, torch.bfloat16, cpu)  # weights stored in another dtype: cast per call
    h = torch.randn(1, 6, ffn[0].in_features)
    assert not gelu_in_epilogue(ffn, h)  # the CPU's epilogue GELU is the erf one: ComfyUI's modules run
    assert torch.equal(block_mlp(ffn, h), ffn(h))
    ffn[0].weight_function = [lambda w: w]  # a LoRA applied on the fly
    assert not stock_tanh_mlp(ffn, torch.float32, cpu)
    ffn[0].weight_function = []
    ffn[0].comfy_cast_weights = True  # low-VRAM loading
    assert not stock_tanh_mlp(ffn, torch.float32, cpu)
    ffn[0].comfy_cast_weights = False
    ffn[1] = torch.nn.GELU()  # the erf GELU is not the epilogue's
    assert not stock_tanh_mlp(ffn, torch.float32, cpu)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="cuBLASLt's GELU epilogue runs on CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mlp_with_the_gelu_in_the_epilogue_matches_comfyuis_mlp(base, dtype):
    import copy

    from rtv.patches.fused_block import block_mlp, gelu_in_epilogue

    ffn = copy.deepcopy(base.get_model_object("diffusion_model").blocks[0].ffn).to("cuda", dtype)
    h = torch.randn(2, 300, ffn[0].in_features, device="cuda").to(dtype)
    assert gelu_in_epilogue(ffn, h)
    with torch.no_grad():
        got, expected = block_mlp(ffn, h).float(), ffn(h).float()
    assert got.shape == expected.shape
    error = ((got - expected).norm() / expected.norm()).item()
    assert error < 1e-2, error
