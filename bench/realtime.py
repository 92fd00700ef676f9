"""Real-time causal generation (issue 9): generator and end-to-end frames/s, dense vs Monarch, one run.

ComfyUI's own WanModel at Wan 2.1 1.3B size (dim 1536, ffn 8960, 30 blocks, 12 heads) with random
weights (speed does not depend on weight values; a Self-Forcing checkpoint has this architecture) and the
full-size Wan 2.1 VAE, both through ComfyUI's loaders; 480 x 832, 81 frames = 21 latent frames in 7
chunks of 3, Self-Forcing's 4 steps ("1000,750,500,250", shift 5) + the clean cache pass per chunk, KV
cache of all frames; the RTV_CausalStreamingSampler code path (sampling/causal.py) with and without
RTV_MonarchAttention, in one process.

Per attention mode: one warm-up video (cuDNN / Triton autotuning for every cache length), then timed
videos (5 by default: the one nearest the median is reported, every repeat is listed). Reported: generator frames/s (DiT only), end-to-end frames/s (DiT + streaming VAE decode of each
chunk + copies to the CPU), first-chunk latency (first chunk generated and decoded), per-chunk times,
peak device memory, and Monarch's speed-up over dense. Prints a table and writes JSON.

    python bench/realtime.py                      # CUDA, bf16, the full size (H100 targets: issue 9)
    python bench/realtime.py --profile            # + a torch.profiler table of one video per mode
    python bench/realtime.py --tiny               # CPU smoke test of this script at a toy size
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from random_wan import TEXT_DIM, TEXT_TOKENS, WAN_1_3B, random_wan_state_dict  # noqa: E402

WAN_VAE_DIM = 96  # the real Wan 2.1 VAE width
# issue 9, H100 bf16: end-to-end frames/s with Monarch, Monarch over dense (same run), first-chunk latency
TARGET_E2E_FPS = 25.0
TARGET_SPEEDUP = 1.2
TARGET_FIRST_CHUNK_S = 0.5
JUDGED_MODES = (
    "monarch_rt+overlap+graphs", "monarch_rt+graphs", "monarch_rt+overlap", "monarch_rt", "monarch+overlap", "monarch",
)  # fmt: skip
"""The first of these in a run is held to the targets: MonarchRT's 25 frames/s is its plain
factorisation (RTV_MonarchAttention with exact_local -1), with the causal sampler node's
``cuda_graphs`` (on by default) and ``overlap_decode`` (a chunk's decode during the next chunk's
steps; off by default, judged with it as in earlier sessions). Each mode is compared with dense under
the same decode and graph setting."""
MODES = {
    "dense": None,  # ComfyUI's attention backend (SDPA on CUDA)
    "monarch": {},  # RTV_MonarchAttention defaults (exact_local 1)
    "monarch_rt": {"exact_local": -1},  # plain MonarchRT factorisation
}


def build(args, torch, dtype):
    import comfy.sd
    import tiny_models
    from comfy.ldm.wan.vae import WanVAE

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tiny:
        sd = tiny_models.tiny_wan_state_dict("t2v", seed=0, dtype=dtype)
        vae_dim = tiny_models.TINY_VAE_BASE_DIM
    else:
        sd = random_wan_state_dict(WAN_1_3B, dtype, device)
        vae_dim = WAN_VAE_DIM
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype})
    del sd
    vae_module = WanVAE(dim=vae_dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                        temperal_downsample=[False, True, True], dropout=0.0)  # fmt: skip
    vae = comfy.sd.VAE(sd=tiny_models._randomize(vae_module, seed=1))
    return model, vae


ALLOCATOR_EVENTS = ("segment.all.allocated", "segment.all.freed", "num_alloc_retries", "num_sync_all_streams")
"""Caching-allocator counters per video: device mallocs and frees (each can stall the host) and the
retries after a failed malloc (which free the cache, a device-wide sync)."""


def _allocator_counts(torch) -> dict:
    if not torch.cuda.is_available():
        return {}
    stats = torch.cuda.memory_stats()
    return {k: stats[k] for k in ALLOCATOR_EVENTS if k in stats}


_GC_SETTINGS = {
    "on": (lambda: None, lambda: None),
    # everything alive before the video leaves the collector's view (old generations stay cheap)
    "frozen": (lambda: (gc.collect(), gc.freeze()), gc.unfreeze),
    "off": (gc.disable, gc.enable),
}
"""Python's cyclic garbage collector during each timed video (``--gc``): an experiment on where the
host's time goes in the few-step sampler (its collections pause the thread that launches kernels)."""


def run_video(sampler, gc_mode: str = "on"):
    """One video; the sampler (and its patched model clone) is reused, so loading is outside the timing."""
    import torch

    before = _allocator_counts(torch)
    collector = _GC_SETTINGS[gc_mode]
    collector[0]()
    t0 = time.perf_counter()
    try:
        result = sampler.run()  # synchronises the device around every chunk phase
    finally:
        wall = time.perf_counter() - t0
        collector[1]()
    after = _allocator_counts(torch)
    result.allocator_events = {k: after[k] - before[k] for k in after if k in before}
    return result, wall


def summarize(result, wall: float) -> dict:
    frames = int(result.images.shape[0])
    generate = sum(r.generate_seconds for r in result.reports)
    decode = sum(r.decode_seconds for r in result.reports)
    return {
        "frames": frames,
        "seconds": round(wall, 4),
        "generate_seconds": round(generate, 4),
        "decode_seconds": round(decode, 4),
        "generator_fps": round(frames / generate, 2),
        "end_to_end_fps": round(frames / wall, 2),
        "first_chunk_latency_s": result.reports[0].seconds,
        "chunk_generate_s": [r.generate_seconds for r in result.reports],
        "chunk_decode_s": [r.decode_seconds for r in result.reports],
        "kv_cache_mib": round(result.reports[-1].working_bytes / 2**20, 1),
        "peak_device_gib": round(result.peak_device_bytes / 2**30, 3) if result.peak_device_bytes else None,
        "calls_with_cached_keys": result.kv_stats.calls_with_cached_keys,
        "allocator_events": getattr(result, "allocator_events", {}),
    }


def profile_video(torch, sampler, rows: int = 15) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        run_video(sampler)
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    kernels_ms = (
        sum(e.self_device_time_total for e in prof.key_averages() if e.device_type.name == "CUDA") / 1000
    )  # GPU busy time (kernels and copies): far below the wall time means the host is the bound
    table = [{"op": "(all device kernels and copies)", "calls": 0, "self_ms": round(kernels_ms, 1)}]
    for e in sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)[:rows]:
        table.append({"op": e.key, "calls": e.count, "self_ms": round(getattr(e, key) / 1000, 2)})
    if torch.cuda.is_available():  # the host's side: which ops cost the Python thread its time
        host = [e for e in prof.key_averages() if e.device_type.name == "CPU"]
        host_ms = sum(e.self_cpu_time_total for e in host) / 1000
        table.append({"op": "(host: all ops' own CPU time)", "calls": 0, "self_ms": round(host_ms, 1)})
        for e in sorted(host, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]:
            table.append({"op": f"host {e.key}", "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1000, 2)})
    return table


def _monarch_choices() -> dict:
    tuned = sys.modules.get("rtv.kernels.monarch.triton_monarch")
    return {key: dict(config) for key, config in getattr(tuned, "_chosen", {}).items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", default=str(REPO / ".host" / "ComfyUI"))
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--chunk", type=int, default=3, help="latent frames per chunk")
    ap.add_argument("--kv-window", type=int, default=-1,
                    help="rolling KV cache of this many latent frames (-1: every frame, the issue's setting)")
    ap.add_argument("--sink", type=int, default=0, help="sink frames kept at the front of a rolling cache")
    ap.add_argument("--timesteps", default="1000,750,500,250")
    ap.add_argument("--shift", type=float, default=5.0)
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of {list(MODES)}")
    ap.add_argument("--repeats", type=int, default=5, help="timed videos per mode (the median is reported)")
    ap.add_argument(
        "--decode",
        default="serial,overlap",
        help="comma list: serial (decode each chunk after it samples) and/or overlap (decode it during "
        "the next chunk's steps on a side stream, the node's default)",
    )
    ap.add_argument(
        "--graphs",
        default="off",
        help="comma list of off/on: replay each chunk's model calls from a CUDA graph (patches/cuda_graphs.py)",
    )
    ap.add_argument("--gc", default="on", choices=sorted(_GC_SETTINGS), help="Python's garbage collector per video")
    ap.add_argument("--profile", action="store_true", help="also profile one video per mode (top ops)")
    ap.add_argument(
        "--tiny", action="store_true", help="tiny model and size on the CPU: a smoke test of this script"
    )
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/realtime_<device>.json)")
    args = ap.parse_args()

    sys.path.insert(0, args.comfy_dir)
    sys.path.insert(0, str(REPO / "tools"))
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = args.tiny or not torch.cuda.is_available()
    from pack_import import load_pack

    load_pack("rtv")
    from rtv.patches.attention import MonarchSettings, apply_monarch_attention
    from rtv.sampling.causal import CausalStreamingSampler
    from rtv.sampling.causal_schedule import causal_sigmas, plan_causal_chunks

    if args.tiny:
        args.width, args.height, args.frames, args.chunk = 64, 48, 17, 2
    on_cuda = not comfy.cli_args.args.cpu
    dtype = torch.bfloat16 if on_cuda else torch.float32
    t0 = time.time()
    base, vae = build(args, torch, dtype)
    build_s = time.time() - t0
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=g), {}]]
    plan = plan_causal_chunks(args.frames, args.chunk, seed=0, kv_window_frames=args.kv_window, sink_frames=args.sink)
    sigmas = causal_sigmas(args.timesteps, args.shift)

    rows, profiles, images, rows_same, rows_graphs = {}, {}, {}, {}, {}
    decodes = [d.strip() for d in args.decode.split(",") if d.strip()]
    if not set(decodes) <= {"serial", "overlap"}:
        raise SystemExit(f"--decode takes serial and/or overlap, got {args.decode!r}")
    graphs = [g.strip() for g in args.graphs.split(",") if g.strip()]
    runs_to_do = [
        (attention, decode, graph)
        for graph in graphs
        for decode in decodes
        for attention in args.modes.split(",")
        if attention.strip()
    ]
    for attention, decode, graph in runs_to_do:
        attention = attention.strip()
        if attention not in MODES:
            raise SystemExit(f"unknown mode {attention!r}: use {list(MODES)}")
        base_mode = attention if decode == "serial" else f"{attention}+overlap"
        mode = base_mode if graph == "off" else f"{base_mode}+graphs"
        settings = MODES[attention]
        model = base if settings is None else apply_monarch_attention(base, MonarchSettings(**settings))
        sampler = CausalStreamingSampler(
            model, positive, vae, plan, sigmas, args.width, args.height, overlap_decode=decode == "overlap",
            cuda_graphs=graph == "on",
        )  # fmt: skip
        warm, _ = run_video(sampler, args.gc)  # warm-up: loads the clone, autotunes every cache length
        images[mode] = warm.images
        first_of_attention = next(m for m in images if m.partition("+")[0] == attention)
        runs = [summarize(*run_video(sampler, args.gc)) for _ in range(max(1, args.repeats))]
        if mode != first_of_attention:  # same seeds: decode order and graphs must not matter
            rows_same[mode] = {"vs": first_of_attention,
                               "max_abs_diff": float((warm.images - images[first_of_attention]).abs().max())}  # fmt: skip
        if sampler.graph is not None:
            blocks = sampler.graph.blocks
            rows_graphs[mode] = {"captures": sampler.graph.captures, "replays": sampler.graph.replays,
                                 "failure": sampler.graph.failure, "block_captures": blocks.captures,
                                 "block_replays": blocks.replays, "block_failure": blocks.failure}  # fmt: skip
        rows[mode] = min(
            runs, key=lambda r: abs(r["seconds"] - statistics.median(x["seconds"] for x in runs))
        )
        rows[mode]["repeats_seconds"] = [r["seconds"] for r in runs]
        rows[mode]["repeats_generate_seconds"] = [r["generate_seconds"] for r in runs]
        rows[mode]["repeats_first_chunk_s"] = [r["first_chunk_latency_s"] for r in runs]
        rows[mode]["repeats_allocator_events"] = [r["allocator_events"] for r in runs]
        if args.profile:
            profiles[mode] = profile_video(torch, sampler)
        print(f"{mode}: {rows[mode]['end_to_end_fps']} frames/s end to end", flush=True)

    for mode, diff in rows_same.items():
        rows[mode]["frames_vs_first_run_of_this_attention"] = diff
    for mode, info in rows_graphs.items():
        rows[mode]["cuda_graphs"] = info
    for mode, row in rows.items():
        setting = mode.partition("+")[2]
        dense = rows.get("dense" + ("+" + setting if setting else ""))
        if dense is not None:  # against dense with the same decode
            row["speedup_generator_vs_dense"] = round(dense["generate_seconds"] / row["generate_seconds"], 3)
            row["speedup_end_to_end_vs_dense"] = round(dense["seconds"] / row["seconds"], 3)
    targets = {}
    best = next((m for m in JUDGED_MODES if m in rows), "monarch")
    if best in rows:
        m = rows[best]
        targets = {
            f"{best} end-to-end >= {TARGET_E2E_FPS} frames/s": m["end_to_end_fps"] >= TARGET_E2E_FPS,
            f"{best} >= {TARGET_SPEEDUP}x dense end to end": m.get("speedup_end_to_end_vs_dense", 0)
            >= TARGET_SPEEDUP,
            f"{best} first chunk < {TARGET_FIRST_CHUNK_S} s": m["first_chunk_latency_s"]
            < TARGET_FIRST_CHUNK_S,
        }
    device_name = torch.cuda.get_device_name() if on_cuda else "cpu"
    info = {
        "device": device_name,
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "model": "ComfyUI WanModel "
        + ("tiny" if args.tiny else "Wan 2.1 1.3B size (dim 1536, 30 blocks, 12 heads)"),
        "vae": f"Wan 2.1 VAE, base dim {8 if args.tiny else WAN_VAE_DIM}",
        "dtype": str(dtype),
        "resolution": f"{args.width}x{args.height}",
        "plan": plan.describe(),
        "sigmas": sigmas,
        "model_calls_per_chunk": len(sigmas),  # steps + the clean cache pass
        "targets_judged_on": best,
        "decode": "streaming Wan VAE decode, cuDNN benchmark mode; '+overlap': a chunk decodes during the "
        "next chunk's steps on a side stream (the first chunk at once); decode_seconds then counts only "
        "the part that did not overlap",
        "model_and_vae_build_s": round(build_s, 1),
        "cuda_alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        "python_gc": args.gc,  # ComfyUI's main sets cudaMallocAsync
        "modes": rows,
        "targets_h100": targets,
        "profiles": profiles,
        # the kernel configs this process's autotuning chose (MonarchRT's speed differs between processes)
        "monarch_autotune": _monarch_choices(),
    }
    tag = "tiny_cpu" if args.tiny else device_name.lower().replace("nvidia ", "").split()[0]
    out = Path(args.out or REPO / "bench" / "results" / f"realtime_{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=1) + "\n")

    head = f"{'mode':<19} {'gen f/s':>8} {'e2e f/s':>8} {'first s':>8} {'gen s':>7} {'decode s':>9} {'x dense':>8} {'peak GiB':>9}"
    print(head)
    for mode, r in rows.items():
        print(f"{mode:<19} {r['generator_fps']:>8} {r['end_to_end_fps']:>8} {r['first_chunk_latency_s']:>8} "
              f"{r['generate_seconds']:>7} {r['decode_seconds']:>9} {r.get('speedup_end_to_end_vs_dense', '-'):>8} "
              f"{str(r['peak_device_gib']):>9}")  # fmt: skip
    for name, ok in targets.items():
        print(f"{('PASS' if ok else 'MISS') if on_cuda else 'n/a (CPU smoke run)'}  {name}")
    for mode, table in profiles.items():
        print(f"\nprofile {mode}:")
        for row in table:
            print(f"  {row['self_ms']:>10} ms  {row['calls']:>6}  {row['op'][:80]}")
    print(f"\n{info['device']}, torch {info['torch']}, {info['model']}, {info['resolution']}, {info['plan']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
