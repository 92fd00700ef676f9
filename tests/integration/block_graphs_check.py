"""The causal sampler with and without CUDA graphs on a real GPU, tiny Wan T2V DiT: same video?

Run by ``test_block_graphs.py`` in a fresh interpreter, because the in-process integration tests pin
ComfyUI to the CPU (``conftest.py``) and graphs need ComfyUI to load the model onto the GPU as a server
does. Cases: a cache of all frames (a new key length every chunk: block graphs only) with dense and
Monarch attention in float32 and dense in bfloat16 (the fused Triton norm steps inside the graphs),
a rolling window with a sink (block graphs while it fills, whole-call graphs once its layout
repeats), a model whose first block cannot be captured, and one whose block 1 syncs with the host
(every capture fails: eager from then on). Run under PyTorch's native allocator and under
``PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync`` (ComfyUI's default). Prints one JSON line; the
test asserts.

    COMFYUI_PATH=... python tests/integration/block_graphs_check.py
"""

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(os.environ.get("COMFYUI_PATH") or REPO / ".host" / "ComfyUI")))

import comfy.cli_args  # noqa: E402
import torch  # noqa: E402

comfy.cli_args.args.cpu = not torch.cuda.is_available()

import comfy.model_management  # noqa: E402
import comfy.sd  # noqa: E402
from pack_import import load_pack  # noqa: E402
from tiny_models import TEXT_DIM, tiny_wan_state_dict  # noqa: E402

load_pack("rtv")

from rtv.patches.attention import MonarchSettings, apply_monarch_attention  # noqa: E402
from rtv.sampling.causal import CausalStreamingSampler  # noqa: E402
from rtv.sampling.causal_schedule import causal_sigmas, plan_causal_chunks  # noqa: E402

LATENT_HW = (6, 10)  # 3 x 5 tokens a frame
TEXT_TOKENS = 16


def run(model, frames, chunk, graphs, window=-1, sinks=0):
    plan = plan_causal_chunks(frames, chunk, seed=7, kv_window_frames=window, sink_frames=sinks)
    positive = [[torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=torch.Generator().manual_seed(1)), {}]]
    sampler = CausalStreamingSampler(
        model, positive, None, plan, causal_sigmas("1000,750,500,250", 5.0),
        width=8 * LATENT_HW[1], height=8 * LATENT_HW[0], cuda_graphs=graphs,
    )  # fmt: skip
    return sampler, sampler.run()


def compare(model, frames, chunk, **options) -> dict:
    _, eager = run(model, frames, chunk, False, **options)
    sampler, graphed = run(model, frames, chunk, True, **options)
    again = sampler.run()  # a second run of one sampler: fresh graphs over new cache tensors
    scale = eager.latents.abs().max().item()
    calls = len(sampler.plan.chunks) * len(sampler.sigmas)
    g = sampler.graph
    return {
        "max_abs_diff": (graphed.latents - eager.latents).abs().max().item() / scale,
        "max_abs_diff_second_run": (again.latents - eager.latents).abs().max().item() / scale,
        "model_calls": calls,
        "chunk_shapes": sorted({c.latents for c in sampler.plan.chunks}),
        "call_captures": g.captures, "call_replays": g.replays, "eager_calls": g.eager_calls,
        "block_captures": g.blocks.captures, "block_replays": g.blocks.replays,
        "failures": [g.failure, g.blocks.failure],
        "self_attention_calls": [eager.kv_stats.self_attention_calls, again.kv_stats.self_attention_calls],
    }


def case(result: dict, name: str, *args, **options) -> None:
    # a marker on stderr, where PyTorch's allocator prints its warnings: the test counts them per case
    print(f"CASE {name}", file=sys.stderr, flush=True)
    result[name] = compare(*args, **options)


def main() -> None:
    device = comfy.model_management.get_torch_device()
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "blocks": 2, "runs_per_case": 2,
              "allocator": torch.cuda.get_allocator_backend() if device.type == "cuda" else None}  # fmt: skip
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        base = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=0), model_options={"dtype": dtype})
        case(result, f"growing_dense_{name}", base, 25, 2)  # 7 latent frames: chunks of 2, 2, 2, 1
        if dtype == torch.float32:
            case(result, "growing_monarch_float32", apply_monarch_attention(base, MonarchSettings()), 25, 2)
            case(result, "rolling_dense_float32", base, 41, 2, window=5, sinks=1)  # 11 frames, 6 chunks
            # block 0 with a weight function (as a LoRA applied on the fly): it runs eagerly, and block 1's
            # graphs take their input through a copy instead of from block 0's graph
            patched = base.clone()
            patched.get_model_object("diffusion_model").blocks[0].ffn[0].weight_function = [lambda w: w]
            try:
                case(result, "growing_dense_float32_block0_eager", patched, 25, 2)
            finally:
                patched.get_model_object("diffusion_model").blocks[0].ffn[0].weight_function = []
            # a hook that reads a number back to the host in block 1 (as some patches do): every capture
            # fails there, the run goes on eagerly, and the process lives on under either allocator
            ffn = base.get_model_object("diffusion_model").blocks[1].ffn
            hook = ffn.register_forward_hook(lambda module, args, out: out.abs().max().item() and None)
            try:
                case(result, "growing_dense_float32_sync_in_block", base, 25, 2)
                case(result, "rolling_dense_float32_sync_in_block", base, 41, 2, window=5, sinks=1)
            finally:
                hook.remove()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
