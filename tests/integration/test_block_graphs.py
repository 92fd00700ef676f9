"""Per-block CUDA graphs around the eager self-attention (patches/block_graphs.py), on the tiny Wan T2V DiT.

On the GPU (``block_graphs_check.py`` in a fresh interpreter, ComfyUI choosing the GPU): the causal
sampler with ``cuda_graphs`` gives the video of the eager sampler, with a growing cache (every chunk a
new key length: only block graphs apply; dense and Monarch, float32 and bfloat16) and with a rolling
window (block graphs while it fills, whole-call graphs once its layout repeats).
On the CPU: which blocks may be captured, and that nothing is captured off CUDA.
"""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_kv_cache import _causal, _context, base  # noqa: F401 - base is a fixture

from rtv.patches.block_graphs import BlockGraphs, graphable_block
from rtv.patches.kv_cache import KVCacheState

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
COMFY_DIR = Path(os.environ.get("COMFYUI_PATH") or Path(__file__).resolve().parents[2] / ".host" / "ComfyUI")
CHECK = Path(__file__).with_name("block_graphs_check.py")


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


@pytest.mark.gpu
@needs_cuda
def test_graphed_sampler_gives_the_eager_video_on_the_gpu():
    env = {**os.environ, "COMFYUI_PATH": str(COMFY_DIR)}
    done = subprocess.run([sys.executable, str(CHECK)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT "):])
    blocks, runs = r["blocks"], r["runs_per_case"]
    cases = ("growing_dense_float32", "growing_monarch_float32", "growing_dense_bfloat16", "rolling_dense_float32",
             "growing_dense_float32_block0_eager")  # fmt: skip
    for case in cases:
        c = r[case]
        graphed = blocks - 1 if case.endswith("block0_eager") else blocks
        assert c["failures"] == [None, None], (case, c)
        tolerance = 1e-2 if "bfloat16" in case else 1e-5  # the same kernels replayed: equal in practice
        assert c["max_abs_diff"] <= tolerance and c["max_abs_diff_second_run"] <= tolerance, (case, c)
        if case.startswith("growing"):
            assert c["self_attention_calls"][0] == c["self_attention_calls"][1] > 0, (case, c)  # all eager
            # every chunk has a new key length: no whole-call graph; each token shape (chunks of 2
            # frames, the last of 1) is captured at its second call, two graphs a block
            shapes = len(c["chunk_shapes"])
            assert c["call_captures"] == 0, (case, c)
            assert c["block_captures"] == runs * shapes * 2 * graphed, (case, c)
            assert c["block_replays"] == runs * graphed * (c["model_calls"] - shapes), (case, c)
        else:  # block graphs while the window fills, then the whole call once the layout repeats
            assert c["call_captures"] >= runs and c["call_replays"] > 0 and c["block_replays"] > 0, (case, c)
            # a replayed whole call runs no Python, so its attention calls go uncounted
            assert c["self_attention_calls"][1] < c["self_attention_calls"][0], (case, c)


@pytest.mark.gpu
@needs_cuda
def test_under_comfyuis_default_allocator_graphs_stay_off_and_the_video_is_the_same():
    """ComfyUI starts with cudaMallocAsync unless told --disable-cuda-malloc; a capture there aborted the
    process once (bench/results/realtime_h100_graphs_cudamallocasync.log), so nothing may be captured."""
    env = {**os.environ, "COMFYUI_PATH": str(COMFY_DIR), "PYTORCH_CUDA_ALLOC_CONF": "backend:cudaMallocAsync"}
    done = subprocess.run([sys.executable, str(CHECK)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT "):])
    assert r["allocator"] == "cudaMallocAsync"
    c = r["growing_dense_float32"]
    assert c["block_captures"] == c["call_captures"] == c["block_replays"] == 0, c
    assert all("native caching allocator" in f for f in c["failures"]), c
    assert c["max_abs_diff"] == c["max_abs_diff_second_run"] == 0.0, c
