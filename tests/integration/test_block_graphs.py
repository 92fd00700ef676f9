"""Per-block CUDA graphs around the eager self-attention (patches/block_graphs.py), on the tiny Wan T2V DiT.

On the GPU: the causal sampler with ``cuda_graphs`` gives the video of the eager sampler, with a
growing cache (every chunk a new key length: only block graphs apply) and with a rolling window (block
graphs while it fills, whole-call graphs once its layout repeats), also under Monarch attention.
On the CPU: which blocks may be captured, and that nothing is captured off CUDA.
"""

import copy

import pytest
import torch
from test_kv_cache import BLOCKS, _causal, _close, _context, base  # noqa: F401 - base is a fixture

from rtv.patches.attention import MonarchSettings, apply_monarch_attention
from rtv.patches.block_graphs import BlockGraphs, graphable_block
from rtv.patches.kv_cache import KVCacheState

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


def test_blocks_with_weights_cast_or_patched_per_call_are_not_captured(base):  # noqa: F811
    block = copy.deepcopy(base.get_model_object("diffusion_model").blocks[0])
    assert graphable_block(block, torch.device("cpu"))
    assert not graphable_block(block, torch.device("cuda", 0))  # the weights live elsewhere
    block.ffn[0].comfy_cast_weights = True  # low-VRAM loading casts (and may stream) weights every call
    assert not graphable_block(block, torch.device("cpu"))
    block.ffn[0].comfy_cast_weights = False
    block.self_attn.q.weight_function = [lambda w: w]  # a LoRA applied on the fly
    assert not graphable_block(block, torch.device("cpu"))


def test_off_cuda_every_block_runs_eagerly(base):  # noqa: F811
    positive = [[_context(), {}]]
    plain = _causal(base, positive, 17, chunk=2)
    graphed = _causal(base, positive, 17, chunk=2, cuda_graphs=True)
    assert torch.equal(plain.latents, graphed.latents)
    graphs = BlockGraphs(KVCacheState(4))
    x = torch.zeros(1, 8, 4)
    assert graphs.forward(0, None, x, x, x, x, None, {}) is None and graphs.captures == 0


def _sampler_run(model, positive, total_frames, chunk, **options):
    from test_kv_cache import LATENT_HW

    from rtv.sampling.causal import CausalStreamingSampler
    from rtv.sampling.causal_schedule import causal_sigmas, plan_causal_chunks

    plan = plan_causal_chunks(total_frames, chunk, seed=7, kv_window_frames=options.pop("window", -1),
                              sink_frames=options.pop("sinks", 0))  # fmt: skip
    sampler = CausalStreamingSampler(
        model, positive, None, plan, causal_sigmas("1000,750,500,250", 5.0),
        width=8 * LATENT_HW[1], height=8 * LATENT_HW[0], **options,
    )  # fmt: skip
    return sampler, sampler.run()


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("attention", ["dense", "monarch"])
def test_growing_cache_replays_every_block_and_gives_the_eager_video(base, attention):  # noqa: F811
    model = base if attention == "dense" else apply_monarch_attention(base, MonarchSettings())
    positive = [[_context(), {}]]
    _, eager = _sampler_run(model, positive, 25, 2)  # 7 latent frames: chunks of 2, 2, 2, 1
    sampler, graphed = _sampler_run(model, positive, 25, 2, cuda_graphs=True)
    blocks = sampler.graph.blocks
    assert blocks.failure is None, blocks.failure
    # two token shapes (chunks of 2 frames, the last of 1): each captured at its second call
    assert blocks.captures == 2 * BLOCKS * 2
    calls = 3 * 5 + 5  # model calls of the run
    assert blocks.replays == BLOCKS * (calls - 2)
    assert sampler.graph.captures == 0  # every chunk has a new key length: no whole-call graph
    assert _close(graphed.latents, eager.latents), (graphed.latents - eager.latents).abs().max()
    assert graphed.kv_stats.self_attention_calls == eager.kv_stats.self_attention_calls


@pytest.mark.gpu
@needs_cuda
def test_rolling_window_uses_block_graphs_while_filling_and_call_graphs_after(base):  # noqa: F811
    positive = [[_context(), {}]]
    _, eager = _sampler_run(base, positive, 41, 2, window=5, sinks=1)  # 11 latent frames, 6 chunks
    sampler, graphed = _sampler_run(base, positive, 41, 2, window=5, sinks=1, cuda_graphs=True)
    assert sampler.graph.failure is None and sampler.graph.blocks.failure is None
    assert sampler.graph.captures >= 1 and sampler.graph.replays >= 1
    assert sampler.graph.blocks.replays >= BLOCKS
    assert _close(graphed.latents, eager.latents), (graphed.latents - eager.latents).abs().max()
    # a second run of the same sampler starts from fresh graphs (new cache tensors) and agrees again
    again = sampler.run()
    assert _close(again.latents, eager.latents)
