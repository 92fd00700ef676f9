"""CUDA-graph replay of a chunk's model calls (patches/cuda_graphs.py) equals eager calls.

The executor below behaves like the causal Wan call in the ways that matter for capture: it writes
the chunk's keys into a persistent cache slot (same slot on every call of a chunk, a new slot per
chunk), attends over everything cached so far, and is called the way ComfyUI calls the diffusion
model (``control=None`` among the keywords). The sampler-level check on the real model is
``bench/realtime.py --graphs off,on`` (frames compared, captures and replays counted).
"""

import comfy.ldm.wan.model as wan_model
import pytest
import torch

from rtv.patches.cuda_graphs import EAGER, ChunkGraph, _sinusoidal_embedding_on_device, set_call_variant

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")

TOKENS, DIM = 64, 32


class CachedModel:
    """A toy call with a KV cache: chunk ``c`` owns rows ``c*TOKENS:(c+1)*TOKENS`` of the cache."""

    def __init__(self, chunks: int):
        g = torch.Generator(device="cuda").manual_seed(0)
        self.weight = torch.randn(DIM, DIM, device="cuda", generator=g) / DIM**0.5
        self.cache = torch.zeros(chunks * TOKENS, DIM, device="cuda")
        self.chunk = 0
        self.log: list[tuple] = []

    def executor(self, x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options=None,
                 **kwargs):  # fmt: skip
        self.log.append((self.chunk, sorted(kwargs)))
        h = torch.tanh(x @ self.weight + timestep[:, None, None] + context.mean(1, keepdim=True))
        end = (self.chunk + 1) * TOKENS
        self.cache[self.chunk * TOKENS : end] = h[0]
        keys = self.cache[:end]
        attention = torch.softmax(h @ keys.T, dim=-1)
        return x + attention @ keys


def _run(model: CachedModel, graph: ChunkGraph | None, chunks: int, calls: int, variants=None):
    outputs = []
    for chunk in range(chunks):
        model.chunk = chunk
        if graph is not None:
            graph.reset()
        for call in range(calls):
            g = torch.Generator(device="cuda").manual_seed(100 * chunk + call)
            x = torch.randn(1, TOKENS, DIM, device="cuda", generator=g)
            t = torch.full((1,), 1.0 - call / calls, device="cuda")
            context = torch.randn(1, 8, DIM, device="cuda", generator=g)
            options = {}
            if variants is not None:
                set_call_variant(options, "test", variants(call))
            if graph is None:
                out = model.executor(x, t, context, None, None, options, control=None)
            else:
                out = graph.wrapper(model.executor, x, t, context, None, None, options, control=None)
            outputs.append(out)
    return torch.stack(outputs)


@pytest.mark.gpu
@needs_cuda
def test_replayed_chunks_equal_eager_calls_and_each_chunk_gets_its_own_graph():
    eager_model = CachedModel(3)
    eager = _run(eager_model, None, chunks=3, calls=5)
    graph = ChunkGraph()
    model = CachedModel(3)
    replayed = _run(model, graph, chunks=3, calls=5)
    assert graph.failure is None
    assert (graph.captures, graph.replays, graph.eager_calls) == (3, 9, 3)
    assert all(kwargs == ["control"] for _, kwargs in model.log)  # ComfyUI's keywords pass through
    torch.testing.assert_close(replayed, eager, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.cache, eager_model.cache, rtol=0, atol=1e-6)
    assert model.cache.abs().sum(-1).gt(0).all()  # every chunk wrote its slot


@pytest.mark.gpu
@needs_cuda
def test_variants_get_separate_graphs_and_eager_variants_never_capture():
    dense_first = lambda call: call == 0  # noqa: E731 - Monarch's dense_first_steps=1
    eager = _run(CachedModel(2), None, chunks=2, calls=5, variants=dense_first)
    graph = ChunkGraph()
    replayed = _run(CachedModel(2), graph, chunks=2, calls=5, variants=dense_first)
    torch.testing.assert_close(replayed, eager, rtol=0, atol=1e-6)
    # per chunk: the dense call eager, then the other variant eager, captured, replayed twice
    assert (graph.captures, graph.replays, graph.eager_calls) == (2, 4, 4)

    never = ChunkGraph()
    _run(CachedModel(2), never, chunks=2, calls=5, variants=lambda call: EAGER)
    assert (never.captures, never.replays, never.eager_calls) == (0, 0, 10)


@pytest.mark.gpu
@needs_cuda
def test_a_call_that_cannot_be_captured_falls_back_to_eager_for_the_rest_of_the_run():
    def syncing(x, timestep, context, clip_fea=None, time_dim_concat=None, transformer_options=None, **kw):
        return x * float(timestep.sum())  # reads the device back: illegal while capturing

    graph = ChunkGraph()
    x = torch.ones(1, 4, 4, device="cuda")
    context = torch.zeros(1, 2, 4, device="cuda")
    results = [graph.wrapper(syncing, x, torch.full((1,), float(i), device="cuda"), context, None, None, {},
                             control=None) for i in range(4)]  # fmt: skip
    assert graph.failure is not None and not graph.enabled
    assert graph.captures == 0 and graph.replays == 0
    for i, out in enumerate(results):
        torch.testing.assert_close(out, x * i)


@pytest.mark.gpu
@needs_cuda
def test_a_model_whose_weights_change_per_call_is_never_captured():
    class Executor:  # ComfyUI's WrapperExecutor hands wrappers the model as class_obj
        def __init__(self, model):
            self.class_obj = model

        def __call__(self, x, timestep, context, *args, **kwargs):
            return self.class_obj(x) * timestep

    model = torch.nn.Linear(4, 4, device="cuda")
    model.weight_function = [lambda w: w * 2]  # as ComfyUI's low-VRAM loading or an on-the-fly LoRA set
    graph = ChunkGraph()
    x, context = torch.ones(1, 4, 4, device="cuda"), torch.zeros(1, 2, 4, device="cuda")
    for i in range(3):
        graph.wrapper(Executor(model), x, torch.full((1,), float(i), device="cuda"), context, None, None, {})
    assert graph.captures == 0 and not graph.enabled and "weights move or change" in graph.failure


def test_the_capturable_time_embedding_is_comfyuis_bit_for_bit():
    timesteps = torch.tensor([999.0, 750.0, 250.5, 1.0, 0.0])
    for dim in (256, 10):
        assert torch.equal(_sinusoidal_embedding_on_device(dim, timesteps),
                           wan_model.sinusoidal_embedding_1d(dim, timesteps))  # fmt: skip


def test_graphs_are_kept_for_a_chunk_with_the_same_cache_layout_and_dropped_otherwise():
    graph = ChunkGraph()
    graph.begin_chunk((3, 6, 9))
    assert graph.mode == "eager"  # a layout seen once: no capture (it may never come back)
    graph.variants["captured"] = object()
    graph.begin_chunk((3, 6, 9))  # a full rolling window: the next chunk writes the same slots
    assert "captured" in graph.variants and graph.mode == "replay"
    graph.begin_chunk((3, 3, 9))
    assert graph.variants == {} and graph.mode == "eager"
    graph.variants["captured"] = object()
    graph.reset()  # a new run: new cache buffers
    assert graph.variants == {} and graph.layout is None and graph.mode == "per_chunk"


def test_a_chunk_with_a_new_layout_runs_every_call_eagerly():
    graph = ChunkGraph()
    graph.begin_chunk((3, 0, 9))
    calls = []

    def executor(*args, **kwargs):
        calls.append(args[0])
        return args[0] + 1

    x = torch.zeros(2)
    for _ in range(5):
        assert torch.equal(graph.wrapper(executor, x, torch.ones(1), torch.zeros(1, 2)), x + 1)
    assert len(calls) == 5 and graph.eager_calls == 5 and graph.captures == 0


def test_rope_positions_on_a_device_are_updated_in_place_for_the_next_chunk():
    from rtv.patches.rope import FramePositions

    holder = FramePositions()
    holder.positions = torch.arange(0, 3, dtype=torch.float32)
    on_device = holder.on(torch.device("cpu"), torch.float32)
    holder.positions = torch.arange(6, 9, dtype=torch.float32)  # the next chunk of a rolling window
    assert holder.on(torch.device("cpu"), torch.float32) is on_device  # a captured graph reads this storage
    assert on_device.tolist() == [6.0, 7.0, 8.0]
    holder.positions = torch.arange(9, 11, dtype=torch.float32)  # a shorter last chunk: new storage
    assert holder.on(torch.device("cpu"), torch.float32).tolist() == [9.0, 10.0]


def test_the_kv_cache_layout_is_equal_for_every_chunk_of_a_full_rolling_window():
    from rtv.patches.kv_cache import KVCacheState

    state = KVCacheState(capacity_frames=6, sink_frames=1)
    layouts = []
    for first in range(0, 15, 3):
        state.begin_chunk(first, 3)
        layouts.append(state.layout())
        state.calls_in_chunk = 1  # a model call happened
        state.end_chunk()
    assert layouts[0] != layouts[1]
    assert layouts[1] == layouts[2] == layouts[3] == layouts[4] == (3, 3, 6)
