"""Sequence parallel on 2+ GPUs with NCCL (issue 11), through the node's worker pool.

The check runs in a fresh interpreter (``sp_nccl_check.py``: ComfyUI must choose the GPU as a server
does, while this test session pins it to the CPU). Skipped with its reason on machines with fewer
than two CUDA GPUs; the same comparisons run on the CPU with gloo in ``test_sequence_parallel.py``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

COMFY_DIR = Path(os.environ.get("COMFYUI_PATH") or Path(__file__).resolve().parents[2] / ".host" / "ComfyUI")
CHECK = Path(__file__).with_name("sp_nccl_check.py")
RTOL = 1e-3
"""float32, TF32 matmuls off; ComfyUI's conv ops still allow TF32 (comfy/ops.py, the patch embedding), and
shards change the shapes: 2-3e-4 of the output's range on 2 H200s, where Monarch moves it by 5e-2."""


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL sequence parallel needs 2 or more CUDA GPUs")
def test_two_gpus_give_the_one_gpu_output_for_every_mode():
    env = {**os.environ, "COMFYUI_PATH": str(COMFY_DIR)}
    done = subprocess.run([sys.executable, str(CHECK), "2"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    assert r["backend"] == "nccl" and r["worker_pids"] == 1
    assert r["worker_devices"][0] != r["worker_devices"][1]  # a GPU per rank
    assert r["bidirectional_rel_error"] < RTOL, r
    assert r["causal_rel_error"] < RTOL and r["causal_cached_calls"][0] == r["causal_cached_calls"][1] > 0, r
    assert r["rolling_rel_error"] < RTOL and r["rolling_cached_frames"] == [[0, 5, 6]] * 2, r
    assert r["monarch_vs_dense_rel"] > 10 * RTOL, r  # Monarch changes the output ...
    assert r["monarch_rel_error"] < RTOL and r["monarch_causal_rel_error"] < RTOL, r  # ... the same on every rank
    assert r["pool_after_shutdown"]
