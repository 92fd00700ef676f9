"""Sequence-parallel Wan (issue 11) on CPU with gloo: 2 and 4 ranks against 1, tiny float32 models.

Rank 0 is this test process, ranks 1..W-1 are worker processes of the pool. The module-scoped
``ranks`` fixture makes pytest run every test for 2 ranks, then every test for 4 (one pool start each).
The 1-rank reference is ComfyUI's own unpatched WanModel.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.sd
import pytest
import torch
from tiny_models import TEXT_DIM, tiny_wan_state_dict

from rtv.patches.attention import MonarchSettings, apply_monarch_attention
from rtv.patches.rope import apply_frame_positions
from rtv.patches.sequence_parallel import (
    SPSettings,
    apply_sequence_parallel,
    current_pool,
    default_ranks,
    shutdown_pool,
)
from rtv.patches.sp_comm import SPComm
from rtv.patches.sp_forward import RankRuntime, SPCall
from rtv.patches.sp_layout import RopeAxes, ShardLayout
from rtv.sampling.causal import CausalStreamingSampler
from rtv.sampling.causal_schedule import causal_sigmas, plan_causal_chunks
from rtv.sampling.streaming import ChunkHooks

ROWS, COLS = 3, 5  # tokens per latent frame (latent 6 x 10): 15, so no frame count splits evenly over 2 or 4
LATENT_HW = (2 * ROWS, 2 * COLS)
TEXT_TOKENS = 16
FOUR_HEADS = 512  # ComfyUI's loader: dim // 128 heads


def _close(a, b, rtol=1e-5):
    return (a - b).abs().max().item() <= rtol * b.abs().max().item()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
    shutdown_pool()


@pytest.fixture(scope="module", params=[2, 4])
def ranks(request):
    shutdown_pool()  # the 4-rank tests start their own pool
    return request.param


@pytest.fixture(scope="module")
def base():
    sd = tiny_wan_state_dict("t2v", seed=0, dim=FOUR_HEADS)
    return comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": torch.float32})


@pytest.fixture(scope="module")
def two_heads():
    return comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=0), model_options={"dtype": torch.float32})


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def dit(patcher, x, timestep, context):
    """One forward of the patcher's WanModel the way sampling runs it (patches applied, wrappers merged)."""
    comfy.model_management.load_models_gpu([patcher])
    options = comfy.model_patcher.create_model_options_clone(patcher.model_options)
    comfy.sampler_helpers.prepare_model_patcher(patcher, {}, options)
    with torch.no_grad():
        return patcher.model.diffusion_model(x, timestep, context, transformer_options=options["transformer_options"])


def _causal(model, total_frames=21, chunk=2, window=-1, sinks=0, hooks=None):
    plan = plan_causal_chunks(total_frames, chunk, seed=7, kv_window_frames=window, sink_frames=sinks)
    sampler = CausalStreamingSampler(
        model, [[_randn(1, TEXT_TOKENS, TEXT_DIM, seed=1), {}]], None, plan,
        causal_sigmas("1000,750,500,250", 5.0), width=8 * LATENT_HW[1], height=8 * LATENT_HW[0], hooks=hooks,
    )  # fmt: skip
    return sampler.run()


# ----------------------------------------------------------------------------------------- same output


def test_bidirectional_model_gives_the_one_rank_output(base, ranks):
    x = _randn(2, 16, 3, *LATENT_HW, seed=2)  # batch 2 (cond + uncond), 45 tokens: padded shards
    context = _randn(2, TEXT_TOKENS, TEXT_DIM, seed=3)
    sp = apply_sequence_parallel(base, SPSettings(ranks, "gloo"))
    for timestep in (torch.tensor([500.0, 500.0]), torch.tensor([[900.0, 500.0, 0.0]] * 2)):  # per-frame too
        ref = dit(base, x, timestep, context)
        out = dit(sp, x, timestep, context)
        assert out.shape == ref.shape
        assert _close(out, ref), (out - ref).abs().max()
    pool = current_pool()
    assert pool is not None and pool.config.world == ranks and len(pool.pids) == ranks - 1


def test_causal_sampler_with_kv_cache_gives_the_one_rank_video(base, ranks):
    one = _causal(base)  # 6 latent frames in chunks of 2: each chunk against the cache of the previous
    sp = _causal(apply_sequence_parallel(base, SPSettings(ranks, "gloo")))
    assert [r.first_latent for r in sp.reports] == [0, 2, 4]
    assert _close(sp.latents, one.latents), (sp.latents - one.latents).abs().max()
    assert sp.kv_stats.calls_with_cached_keys == one.kv_stats.calls_with_cached_keys > 0


def test_rolling_cache_with_a_sink_gives_the_one_rank_video(base, ranks):
    one = _causal(base, total_frames=25, chunk=1, window=3, sinks=1)  # 7 chunks, evictions from chunk 3 on
    sp = _causal(apply_sequence_parallel(base, SPSettings(ranks, "gloo")), total_frames=25, chunk=1, window=3, sinks=1)
    assert sp.reports[-1].cached_frames == one.reports[-1].cached_frames == [0, 5, 6]
    assert _close(sp.latents, one.latents), (sp.latents - one.latents).abs().max()


def test_monarch_attention_runs_on_each_ranks_heads(base, ranks):
    monarch = apply_monarch_attention(base, MonarchSettings(exact_local=-1))  # plain MonarchRT: far from dense
    x, context = _randn(1, 16, 3, *LATENT_HW, seed=4), _randn(1, TEXT_TOKENS, TEXT_DIM, seed=5)
    t = torch.tensor([700.0])
    ref, dense = dit(monarch, x, t, context), dit(base, x, t, context)
    out = dit(apply_sequence_parallel(monarch, SPSettings(ranks, "gloo")), x, t, context)
    assert not _close(ref, dense, rtol=1e-3)  # Monarch changes the output ...
    assert _close(out, ref), (out - ref).abs().max()  # ... the same way on every rank's heads
    one = _causal(monarch, total_frames=13)  # chunk mode: a query chunk against cached keys
    sp = _causal(apply_sequence_parallel(monarch, SPSettings(ranks, "gloo")), total_frames=13)
    assert _close(sp.latents, one.latents), (sp.latents - one.latents).abs().max()


# ----------------------------------------------------------------------------------------- positions


def test_shard_rope_tables_are_slices_of_the_global_time_index_rope(base):
    """Every rank's precomputed RoPE equals its slice of ComfyUI's rope_encode at global frames 6-8."""
    model, holder = apply_frame_positions(base)
    dm = model.get_model_object("diffusion_model")
    holder.positions = torch.tensor([6.0, 7.0, 8.0])
    to = {"rtv_frame_positions": holder, "rope_options": {"shift_y": 1.0, "scale_x": 0.5}}
    full = model.get_model_object("diffusion_model.rope_encode")(3, 2 * ROWS, 2 * COLS, dtype=torch.float32,
                                                                  transformer_options=to)
    plain = dm.rope_encode(3, 2 * ROWS, 2 * COLS, dtype=torch.float32)  # frames at 0-2
    call = SPCall(frame_positions=(6.0, 7.0, 8.0))
    call_scaled = SPCall(frame_positions=(6.0, 7.0, 8.0), rope_axes=RopeAxes.from_rope_options(to["rope_options"]))
    for world in (2, 4):
        layout = ShardLayout(45, world)
        for rank in range(world):
            rt = RankRuntime(SPComm(rank, world))
            freqs = rt.shard_freqs(dm, (3, ROWS, COLS), call_scaled, "cpu", torch.float32)
            valid, start = layout.valid_tokens(rank), layout.start(rank)
            assert freqs.shape[1] == layout.shard_tokens
            assert torch.equal(freqs[:, :valid], full[:, start : start + valid])
            assert rt.shard_freqs(dm, (3, ROWS, COLS), call_scaled, "cpu", torch.float32) is freqs  # precomputed
            shifted = rt.shard_freqs(dm, (3, ROWS, COLS), call, "cpu", torch.float32)
            if valid:
                assert not torch.equal(shifted[:, :valid], plain[:, start : start + valid])


# ----------------------------------------------------------------------------------------- errors and shutdown


def test_heads_that_do_not_split_over_the_ranks_are_refused_with_the_numbers(two_heads):
    with pytest.raises(ValueError, match=r"2 attention heads.*cannot be split over 4 ranks.*: 1, 2\."):
        apply_sequence_parallel(two_heads, SPSettings(4, "gloo"))


def test_automatic_ranks_are_lowered_to_a_count_that_divides_the_heads():
    cpu = torch.device("cpu")
    assert default_ranks(cpu, 12, cpu_ranks=8) == 6  # Wan 1.3B on 8 processes: 6 ranks
    assert default_ranks(cpu, 40, cpu_ranks=8) == 8 and default_ranks(cpu, 2, cpu_ranks=2) == 2


class InterruptInChunk(ChunkHooks):
    def __init__(self, chunk_index: int):
        self.chunk_index = chunk_index

    def sampling_callback(self, chunk_index, steps):
        if chunk_index == self.chunk_index:
            return lambda *_: comfy.model_management.interrupt_current_processing(True)
        return None


def _gone(pids, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_interrupt_during_sampling_stops_the_pool(base, ranks):
    if ranks != 2:
        pytest.skip("the pool's life cycle does not depend on its size: checked with 2 ranks")
    sp = apply_sequence_parallel(base, SPSettings(ranks, "gloo"))
    dit(sp, _randn(1, 16, 1, *LATENT_HW, seed=6), torch.tensor([500.0]), _randn(1, TEXT_TOKENS, TEXT_DIM, seed=1))
    pids = current_pool().pids
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            _causal(sp, hooks=InterruptInChunk(1))
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert current_pool() is None
    assert _gone(pids)
    out = _causal(sp, total_frames=9)  # the next run starts a new pool
    assert out.latents.shape[2] == 3 and current_pool() is not None


ORPHAN_DRIVER = """
import os, sys, time
sys.path.insert(0, {tools!r}); sys.path.insert(0, {comfy!r})
from pack_import import load_pack
load_pack("rtv")
import comfy.cli_args
comfy.cli_args.args.cpu = True
import torch
from rtv.patches.sp_pool import PoolConfig, WorkerPool
pool = WorkerPool(PoolConfig(2, "gloo", torch.device("cpu"))).start()
print(" ".join(map(str, pool.pids)), flush=True)
time.sleep(600)
"""


def test_workers_exit_when_the_main_process_dies_without_stopping_them():
    tests = Path(__file__).resolve().parents[1]
    code = ORPHAN_DRIVER.format(tools=str(tests.parent / "tools"), comfy=str(Path(comfy.model_management.__file__).parents[1]))
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in driver.stdout.readline().split()]
        assert len(pids) == 1 and not _gone(pids, timeout=0.5)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert _gone(pids), "a worker outlived the process that started it"
