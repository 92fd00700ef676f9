"""Sequence parallel over real GPUs with NCCL, through the node's worker pool: 2 ranks against 1.

Run by ``test_sequence_parallel_nccl.py`` in a fresh interpreter, because the in-process integration
tests pin ComfyUI to the CPU (``conftest.py``) and this check needs ComfyUI to pick the GPU as it does
in a server. The same comparisons as the gloo tests (bidirectional forward, causal sampler with the
per-rank KV cache, Monarch attention on each rank's heads in chunk mode), float32 tiny model, rank 0
on cuda:0 and a worker on cuda:1. Prints one JSON line with the measured errors; the test asserts.

    COMFYUI_PATH=... python tests/integration/sp_nccl_check.py [ranks]
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

comfy.cli_args.args.cpu = not torch.cuda.is_available()  # a CPU dry run of the script uses gloo

import comfy.model_management  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.sampler_helpers  # noqa: E402
import comfy.sd  # noqa: E402
from pack_import import load_pack  # noqa: E402
from tiny_models import TEXT_DIM, tiny_wan_state_dict  # noqa: E402

load_pack("rtv")

from rtv.patches.attention import MonarchSettings, apply_monarch_attention  # noqa: E402
from rtv.patches.sequence_parallel import SPSettings, apply_sequence_parallel, current_pool, shutdown_pool  # noqa: E402
from rtv.sampling.causal import CausalStreamingSampler  # noqa: E402
from rtv.sampling.causal_schedule import causal_sigmas, plan_causal_chunks  # noqa: E402

LATENT_HW = (6, 10)  # 3 x 5 tokens a frame: no frame count splits evenly, so shards are padded
TEXT_TOKENS = 16


def _randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def rel_error(out, ref) -> float:
    return ((out.float().cpu() - ref.float().cpu()).abs().max() / ref.float().abs().max()).item()


def dit(patcher, x, timestep, context):
    comfy.model_management.load_models_gpu([patcher])
    options = comfy.model_patcher.create_model_options_clone(patcher.model_options)
    comfy.sampler_helpers.prepare_model_patcher(patcher, {}, options)
    device = patcher.load_device
    with torch.no_grad():
        return patcher.model.diffusion_model(x.to(device), timestep.to(device), context.to(device),
                                             transformer_options=options["transformer_options"])  # fmt: skip


def causal(model, total_frames=13, chunk=2, window=-1, sinks=0):
    plan = plan_causal_chunks(total_frames, chunk, seed=7, kv_window_frames=window, sink_frames=sinks)
    sampler = CausalStreamingSampler(
        model, [[_randn(1, TEXT_TOKENS, TEXT_DIM, seed=1), {}]], None, plan,
        causal_sigmas("1000,750,500,250", 5.0), width=8 * LATENT_HW[1], height=8 * LATENT_HW[0],
    )  # fmt: skip
    return sampler.run()


def main(ranks: int) -> dict:
    # exact float32 on both sides: TF32 would make 1 rank and N ranks differ by their matmul shapes
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    base = comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("t2v", seed=0, dim=512),
                                                    model_options={"dtype": torch.float32})  # fmt: skip
    assert base.load_device.type == ("cuda" if torch.cuda.is_available() else "cpu"), base.load_device
    sp = apply_sequence_parallel(base, SPSettings(ranks, "auto"))
    x, context = _randn(2, 16, 3, *LATENT_HW, seed=2), _randn(2, TEXT_TOKENS, TEXT_DIM, seed=3)
    report = {"ranks": ranks, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
              "torch": torch.__version__}
    errors = []
    for timestep in (torch.tensor([500.0, 500.0]), torch.tensor([[900.0, 500.0, 0.0]] * 2)):
        errors.append(rel_error(dit(sp, x, timestep, context), dit(base, x, timestep, context)))
    report["bidirectional_rel_error"] = max(errors)
    pool = current_pool()
    report["backend"] = pool.config.backend
    report["worker_devices"] = pool.worker_devices()
    report["worker_pids"] = len(pool.pids)

    one, many = causal(base), causal(sp)
    report["causal_rel_error"] = rel_error(many.latents, one.latents)
    report["causal_cached_calls"] = [one.kv_stats.calls_with_cached_keys, many.kv_stats.calls_with_cached_keys]

    one, many = causal(base, total_frames=25, chunk=1, window=3, sinks=1), causal(
        sp, total_frames=25, chunk=1, window=3, sinks=1
    )
    report["rolling_rel_error"] = rel_error(many.latents, one.latents)
    report["rolling_cached_frames"] = [one.reports[-1].cached_frames, many.reports[-1].cached_frames]

    monarch = apply_monarch_attention(base, MonarchSettings(exact_local=-1))  # Triton on each rank's heads
    t = torch.tensor([700.0])
    xm, cm = x[:1], context[:1]
    ref, dense = dit(monarch, xm, t, cm), dit(base, xm, t, cm)
    report["monarch_vs_dense_rel"] = rel_error(ref, dense)
    report["monarch_rel_error"] = rel_error(dit(apply_sequence_parallel(monarch, SPSettings(ranks)), xm, t, cm), ref)
    one, many = causal(monarch), causal(apply_sequence_parallel(monarch, SPSettings(ranks)))
    report["monarch_causal_rel_error"] = rel_error(many.latents, one.latents)
    shutdown_pool()
    report["pool_after_shutdown"] = current_pool() is None
    return report


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)), flush=True)
