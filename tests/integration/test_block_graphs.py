"""Per-block CUDA graphs around the eager self-attention (patches/block_graphs.py), on the tiny Wan T2V DiT.

On the GPU (``block_graphs_check.py`` in a fresh interpreter, ComfyUI choosing the GPU): the causal
sampler with ``cuda_graphs`` gives the video of the eager sampler, with a growing cache (every chunk a
new key length: only block graphs apply; dense and Monarch, float32 and bfloat16) and with a rolling
window (block graphs while it fills, whole-call graphs once its layout repeats), under PyTorch's native
allocator and under ComfyUI's default cudaMallocAsync; a block that syncs with the host makes every
capture fail and the run go on eagerly.
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


def _allocator_warnings_per_case(stderr: str) -> dict[str, int]:
    counts, case = {}, None
    for line in stderr.splitlines():
        if line.startswith("CASE "):
            case = line.removeprefix("CASE ").strip()
        elif "uncaptured free of a captured allocation" in line:
            counts[case] = counts.get(case, 0) + 1
    return counts


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("allocator", ["native", "cudaMallocAsync"])
def test_graphed_sampler_gives_the_eager_video_on_the_gpu(allocator):
    """Under PyTorch's native allocator and under cudaMallocAsync, which ComfyUI starts with unless told
    --disable-cuda-malloc (where Triton refused captured tensors and a failed capture once aborted the
    process: bench/results/graph_capture_probe_cudaMallocAsync.json)."""
    env = {**os.environ, "COMFYUI_PATH": str(COMFY_DIR), "PYTORCH_CUDA_ALLOC_CONF": f"backend:{allocator}"}
    done = subprocess.run([sys.executable, str(CHECK)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    r = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))[len("RESULT "):])
    assert r["allocator"] == allocator
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
    # the static tensors the graphs write are made outside the captures: under cudaMallocAsync, freeing
    # a tensor made inside one logs an allocator warning per tensor (a user saw five per video)
    warnings = _allocator_warnings_per_case(done.stderr)
    assert all(warnings.get(case, 0) == 0 for case in cases), (warnings, done.stderr[-3000:])
    # block 1 reads a number back to the host: its capture fails (the sync raises inside the capture
    # instead of invalidating it), the run goes on eagerly with the same video, the process lives on
    for case in ("growing_dense_float32_sync_in_block", "rolling_dense_float32_sync_in_block"):
        c = r[case]
        assert c["failures"][1] and "synchroniz" in c["failures"][1], (case, c)
        assert c["block_captures"] >= 1 and c["call_captures"] == 0, (case, c)
        if case.startswith("rolling"):  # the whole-call capture, tried once the layout repeats, fails too
            assert c["failures"][0] and "synchroniz" in c["failures"][0], (case, c)
        assert c["max_abs_diff"] <= 1e-5 and c["max_abs_diff_second_run"] <= 1e-5, (case, c)
