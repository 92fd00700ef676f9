"""Sequence-parallel throughput vs GPU count (issue 11): Causal-RoPE SP for Wan, with the all-to-all share.

Every rank runs ``patches/sp_forward.sp_wan_forward`` (the code the RTV_SequenceParallel node runs) on
ComfyUI's own ``WanModel`` with random weights (speed does not depend on their values), started with
``torch.multiprocessing.spawn`` (no torchrun), one process per GPU, NCCL:

* ``causal_1.3b_480p``: Wan 2.1 1.3B size (dim 1536, 30 blocks, 12 heads), 832 x 480, 81 frames = 21
  latent frames in 7 chunks of 3 (4680 tokens each) against the per-rank head-shard KV cache,
  Self-Forcing's 4 steps + the clean pass per chunk (35 forwards a video). Throughput: generator
  frames/s (no VAE).
* ``bidirectional_14b_720p``: Wan 14B size (dim 5120, 40 blocks, 40 heads), 1280 x 720 x 81 frames
  (75600 tokens), one denoising step (one forward, batch 1). ``--blocks-14b`` lowers the block count
  when memory forces it (reported in the JSON).

Per GPU count (1, 2, 4, 8 as visible, and only counts that divide the heads): one warm-up, then
``--iters`` timed runs (median); the time spent in the all-to-alls and the output gather is measured
with CUDA events on rank 0 (``sp_comm.CommTimer``) and reported as a share of the run. The 1-GPU row
runs the same code without communication; for the bidirectional case it is also compared with
ComfyUI's stock ``WanModel.forward``. Prints a table and writes JSON to bench/results/.

    python bench/sp.py                                   # every visible GPU count, both cases
    python bench/sp.py --gpus 1,4 --cases causal_1.3b_480p
    python bench/sp.py --attention dense,monarch_rt      # also with Monarch attention on each rank's heads
    python bench/sp.py --cpu-gloo                        # CPU harness check at a toy size (gloo, 1/2/4 ranks)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
COMFY_DIR = Path(os.environ.get("COMFYUI_PATH") or REPO / ".host" / "ComfyUI")
sys.path.insert(0, str(COMFY_DIR))

import comfy.cli_args  # noqa: E402
import torch  # noqa: E402

comfy.cli_args.args.cpu = not torch.cuda.is_available()

from pack_import import load_pack  # noqa: E402
from random_wan import TEXT_DIM, TEXT_TOKENS, WAN_1_3B, WAN_14B  # noqa: E402

load_pack("rtv")

# issue 11 targets on 4 GPUs
TARGET_SPEEDUP_4 = {"causal_1.3b_480p": 1.6, "bidirectional_14b_720p": 3.2}
ATTENTION = {"dense": None, "monarch_rt": {"exact_local": -1}}  # plain MonarchRT: the real-time setting
STEP_TIMESTEPS = (1000.0, 937.5, 833.3, 625.0)  # Self-Forcing's warped steps, then the clean pass at 0
CASES = {
    "causal_1.3b_480p": dict(kind="causal", config=WAN_1_3B, latent_hw=(60, 104), frames=21, chunk=3,
                             label="Wan 2.1 1.3B size, 832x480, 81 frames in chunks of 3 latent frames"),
    "bidirectional_14b_720p": dict(kind="bidirectional", config=WAN_14B, latent_hw=(90, 160), frames=21,
                                   label="Wan 14B size, 1280x720x81 frames, one denoising step"),
}  # fmt: skip
TINY_CONFIG = dict(dim=512, ffn_dim=1024, num_layers=2, num_heads=4)
TINY_CASES = {
    "causal_tiny": dict(kind="causal", config=TINY_CONFIG, latent_hw=(6, 10), frames=6, chunk=2,
                        label="toy causal: 4 heads, 2 blocks, 3x5 tokens a frame, 6 latent frames in chunks of 2"),
    "bidirectional_tiny": dict(kind="bidirectional", config=TINY_CONFIG, latent_hw=(6, 10), frames=3,
                               label="toy bidirectional: 4 heads, 2 blocks, 45 tokens"),
}  # fmt: skip


def build_random_wan(config: dict, dtype, device, seed: int = 0):
    """ComfyUI's WanModel with random weights made in place on ``device`` (each parameter keeps ComfyUI's
    dtype: the patch embedding stays float32)."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    dm = WanModel(model_type="t2v", patch_size=(1, 2, 2), in_dim=16, out_dim=16, freq_dim=256, text_dim=TEXT_DIM,
                  qk_norm=True, cross_attn_norm=True, device="meta", dtype=dtype,
                  operations=comfy.ops.disable_weight_init, **config).to_empty(device=device)  # fmt: skip
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in dm.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "bias" and p.ndim == 1:
                p.zero_()
            elif p.ndim == 1 and (leaf == "weight" or "norm" in name):
                p.fill_(1.0)
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=g, device=device) * fan_in**-0.5)
    return dm.eval().requires_grad_(False)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _randn(shape, seed, device, dtype):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device=device, dtype=dtype)


def attention_settings(attention: str, frames: int, latent_hw) -> dict:
    """SPCall fields that route every rank's self-attention through RTV_MonarchAttention's override
    (what the node sends the ranks), or nothing for ComfyUI's dense attention."""
    if attention == "dense":
        return {}
    from rtv.patches.attention import STATE_KEY, MonarchPatch, MonarchSettings, _CallState
    from rtv.patches.wan import TokenGrid

    patch = MonarchPatch(MonarchSettings(**ATTENTION[attention]))
    grid = TokenGrid(frames, latent_hw[0] // 2, latent_hw[1] // 2)
    return {"attention_override": patch.override, "attention_state": {STATE_KEY: _CallState(grid, None, None)}}


def run_causal(case, dm, rt, device, dtype, context, attention="dense"):
    """One video: chunk after chunk, 4 steps + the clean pass each, against the rank KV cache."""
    from rtv.patches.sp_cache import KVSnapshot
    from rtv.patches.sp_forward import SPCall, sp_wan_forward

    frames, chunk, hw = case["frames"], case["chunk"], case["latent_hw"]
    last_chunk = 0.0
    for first in range(0, frames, chunk):
        n = min(chunk, frames - first)
        call = SPCall(frame_positions=tuple(float(f) for f in range(first, first + n)),
                      kv=KVSnapshot(frames, 0, (first, n), tuple(range(first))),
                      **attention_settings(attention, n, hw))  # fmt: skip
        x = _randn((1, 16, n, *hw), first, device, dtype)
        _sync(device)
        t0 = time.perf_counter()
        for t in (*STEP_TIMESTEPS, 0.0):
            x = sp_wan_forward(dm, x, torch.tensor([t], device=device), context, None, call, rt)
        _sync(device)
        last_chunk = time.perf_counter() - t0
    return {"last_chunk_seconds": last_chunk}


def run_bidirectional(case, dm, rt, device, dtype, context, attention="dense"):
    from rtv.patches.sp_forward import SPCall, sp_wan_forward

    x = _randn((1, 16, case["frames"], *case["latent_hw"]), 0, device, dtype)
    call = SPCall(**attention_settings(attention, case["frames"], case["latent_hw"]))
    sp_wan_forward(dm, x, torch.tensor([900.0], device=device), context, None, call, rt)
    return {}


def rank_main(rank: int, world: int, port: int, case: dict, args: dict, out_path: str) -> None:
    import torch.distributed as dist

    from rtv.patches.sp_comm import CommTimer, SPComm
    from rtv.patches.sp_forward import RankRuntime

    cpu = args["cpu_gloo"]
    device = torch.device("cpu") if cpu else torch.device("cuda", rank)
    if cpu:
        torch.set_num_threads(1)
    else:
        torch.cuda.set_device(device)
    dtype = torch.float32 if cpu else torch.bfloat16
    dist.init_process_group("gloo" if cpu else "nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, device_id=None if cpu else device)  # fmt: skip
    config = dict(case["config"])
    if args.get("blocks") is not None:
        config["num_layers"] = args["blocks"]
    t0 = time.perf_counter()
    dm = build_random_wan(config, dtype, device)
    build_s = time.perf_counter() - t0
    timer = CommTimer(enabled=True)
    rt = RankRuntime(SPComm(rank, world, timer=timer))
    context = _randn((1, TEXT_TOKENS, TEXT_DIM), 1, device, dtype)
    run = run_causal if case["kind"] == "causal" else run_bidirectional
    times, comm, extra = [], [], {}
    with torch.inference_mode():
        for i in range(args["iters"] + 1):  # the first run is the warm-up
            dist.barrier()
            _sync(device)
            timer.reset()
            t0 = time.perf_counter()
            extra = run(case, dm, rt, device, dtype, context, args["attention"])
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
                comm.append(timer.seconds())
        stock = None
        if world == 1 and case["kind"] == "bidirectional" and args["attention"] == "dense":  # ComfyUI's forward
            x = _randn((1, 16, case["frames"], *case["latent_hw"]), 0, device, dtype)
            stock_times = []
            for i in range(args["iters"] + 1):
                _sync(device)
                t0 = time.perf_counter()
                dm(x, torch.tensor([900.0], device=device), context)
                _sync(device)
                if i:
                    stock_times.append(time.perf_counter() - t0)
            stock = statistics.median(stock_times)
    if rank == 0:
        seconds = statistics.median(times)
        result = {
            "ranks": world,
            "seconds": round(seconds, 4),
            "all_seconds": [round(t, 4) for t in times],
            "comm_seconds": round(statistics.median(comm), 4),
            "comm_share": round(statistics.median(c / t for c, t in zip(comm, times)), 4),
            "collectives_per_run": timer.calls,
            "blocks": config["num_layers"],
            "attention": args["attention"],
            "build_s": round(build_s, 2),
            **{k: round(v, 4) for k, v in extra.items()},
        }
        if case["kind"] == "causal":
            result["generator_fps"] = round((4 * (case["frames"] - 1) + 1) / seconds, 2)
        if stock is not None:
            result["stock_comfy_forward_seconds"] = round(stock, 4)
        if device.type == "cuda":
            result["peak_gib_rank0"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        Path(out_path).write_text(json.dumps(result))
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_case(name: str, case: dict, counts: list[int], args: dict) -> list[dict]:
    import torch.multiprocessing as mp

    rows = []
    for world in counts:
        if case["config"]["num_heads"] % world:
            print(f"  {name}: skipping {world} ranks ({case['config']['num_heads']} heads do not split)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "rank0.json")
            mp.spawn(rank_main, args=(world, free_port(), case, args, out), nprocs=world, join=True)
            row = json.loads(Path(out).read_text())
        rows.append(row)
        print(f"  {name}: {world} ranks {row['seconds']:.3f} s (comm {100 * row['comm_share']:.1f}%)", flush=True)
    base = next((r["seconds"] for r in rows if r["ranks"] == 1), None)
    for r in rows:
        r["speedup_vs_1"] = round(base / r["seconds"], 3) if base else None
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", default=None, help="comma separated GPU counts (default: 1,2,4,8 up to visible)")
    parser.add_argument("--cases", default=None, help=f"comma separated, of {sorted(CASES)}")
    parser.add_argument("--attention", default="dense",
                        help=f"comma list of {sorted(ATTENTION)}: each case runs with each (Monarch on each rank's heads)")
    parser.add_argument("--iters", type=int, default=3, help="timed runs per count (after one warm-up)")
    parser.add_argument("--blocks-14b", type=int, default=None, help="fewer 14B blocks if memory forces it")
    parser.add_argument("--cpu-gloo", action="store_true", help="toy size on CPU processes with gloo (harness check)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/sp_<device>.json)")
    a = parser.parse_args()

    cases = TINY_CASES if a.cpu_gloo else CASES
    if a.cases:
        cases = {k: cases[k] for k in a.cases.split(",")}
    visible = 4 if a.cpu_gloo else torch.cuda.device_count()
    if visible == 0:
        print("no CUDA GPU visible: run with --cpu-gloo for the CPU harness check")
        return 2
    counts = [int(c) for c in a.gpus.split(",")] if a.gpus else [c for c in (1, 2, 4, 8) if c <= visible]
    device_name = "CPU (gloo processes)" if a.cpu_gloo else torch.cuda.get_device_name(0)
    print(f"sequence-parallel bench on {device_name}, ranks {counts}")
    results = {}
    for attention in a.attention.split(","):
        if attention not in ATTENTION:
            raise SystemExit(f"unknown --attention {attention!r}: use {sorted(ATTENTION)}")
        for name, case in cases.items():
            args = {"cpu_gloo": a.cpu_gloo, "iters": a.iters, "attention": attention,
                    "blocks": a.blocks_14b if name.startswith("bidirectional_14b") else None}  # fmt: skip
            rows = run_case(name, case, counts, args)
            entry = {"label": case["label"], "attention": attention, "rows": rows}
            four = next((r for r in rows if r["ranks"] == 4), None)
            if name in TARGET_SPEEDUP_4 and four is not None:
                entry["target_speedup_4"] = TARGET_SPEEDUP_4[name]
                entry["meets_target"] = four["speedup_vs_1"] >= TARGET_SPEEDUP_4[name]
            if args["blocks"] is not None:
                entry["note"] = f"blocks reduced to {args['blocks']} of {case['config']['num_layers']} for memory"
            results[name if attention == "dense" else f"{name}+{attention}"] = entry

    print(f"\n{'case':<37}{'ranks':>6}{'s/run':>10}{'speedup':>9}{'comm %':>8}{'fps':>8}")
    for name, entry in results.items():
        for r in entry["rows"]:
            fps = f"{r['generator_fps']:.1f}" if "generator_fps" in r else "-"
            print(f"{name:<37}{r['ranks']:>6}{r['seconds']:>10.3f}{r['speedup_vs_1']:>9.2f}"
                  f"{100 * r['comm_share']:>8.1f}{fps:>8}")  # fmt: skip
    report = {
        "device": device_name,
        "torch": torch.__version__,
        "backend": "gloo" if a.cpu_gloo else "nccl",
        "dtype": "float32" if a.cpu_gloo else "bfloat16",
        "cases": results,
    }
    if a.cpu_gloo:
        report["note"] = ("CPU harness check at a toy size (one thread per rank on a shared CPU): proves the "
                          "bench runs end to end; these are NOT GPU results and say nothing about GPU speed-up")  # fmt: skip
    else:
        report["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    gpu = re.search(r"\b([A-Z]\d{2,3}[A-Z]?)\b", device_name)  # H100, H200, A100, L40S ...
    default = "sp_cpu_gloo_tiny.json" if a.cpu_gloo else f"sp_{gpu.group(1).lower() if gpu else 'cuda'}.json"
    out = Path(a.out) if a.out else REPO / "bench" / "results" / default
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
