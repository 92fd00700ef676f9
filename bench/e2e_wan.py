"""One denoising step of ComfyUI's Wan model, stock attention vs RTV_MonarchAttention (issue 5 item 4).

ComfyUI's own ``WanModel`` at the released sizes with random bf16 weights (bench/random_wan.py),
loaded through ``comfy.sd.load_diffusion_model_state_dict``; one step through ComfyUI's sampler
(``comfy.sample.sample_custom``, Euler, one sigma pair, cfg 1 so there is exactly one model call),
the same process and the same inputs for every mode:

* ``stock``       ComfyUI's attention (cuDNN / flash SDPA on CUDA);
* ``dense_fused`` the node's patch kept dense (its first step dense): what the fused q/k norm + RoPE
                  and block steps alone are worth, and the baseline of the attention's own share;
* ``monarch``     ``RTV_MonarchAttention`` with the node's defaults (exact local tiles 1);
* ``monarch_rt``  plain MonarchRT (exact_local -1), the kernel's fastest setting.

Sizes: Wan 2.1 1.3B (dim 1536, 30 blocks, 12 heads) at 480 x 832 x 81 frames (32760 tokens), and
the 14B shape (dim 5120, 40 blocks, 40 heads) at 720 x 1280 x 81 frames (75600 tokens) when memory
allows. The first step per mode is a warm-up (Triton autotuning, cuDNN plans); the median of the
timed steps is reported, with the output's relative L2 distance to the stock step. Prints a table and
writes JSON.

    python bench/e2e_wan.py                         # CUDA: 1.3B 480p, then 14B 720p
    python bench/e2e_wan.py --sizes 1.3b
    python bench/e2e_wan.py --tiny                  # CPU smoke test of this script at a toy size
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from random_wan import TEXT_DIM, TEXT_TOKENS, WAN_1_3B, WAN_14B, random_wan_state_dict  # noqa: E402

TARGET_SPEEDUP_1_3B = 2.0  # issue 5: a 1.3B 480p x 81 step at least 2x faster patched than stock
SIZES = {
    "1.3b": {"config": WAN_1_3B, "width": 832, "height": 480, "label": "Wan 2.1 1.3B, 480x832x81"},
    "14b": {"config": WAN_14B, "width": 1280, "height": 720, "label": "Wan 14B shape, 720x1280x81"},
}
TINY = {"config": dict(dim=256, ffn_dim=512, num_layers=2, num_heads=2), "width": 64, "height": 48}
MODES = {
    "stock": None,
    "dense_fused": {"dense_first_steps": 1},  # the patch with dense attention: only its fused block steps
    "monarch": {},  # RTV_MonarchAttention's defaults
    "monarch_rt": {"exact_local": -1},
}


def one_step(comfy, model, latent, noise, positive, sigmas):
    sampler = comfy.samplers.sampler_object("euler")
    return comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, positive, [], latent, disable_pbar=True, seed=0)


def one_step_seconds(torch, comfy, model, latent, noise, positive, sigmas, repeats: int):
    """Warm-up step, then ``repeats`` timed steps; returns (median seconds, all, last output)."""
    times, out = [], None
    for i in range(repeats + 1):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = one_step(comfy, model, latent, noise, positive, sigmas)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if i:  # the first step tunes kernels and loads the model
            times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def profile_step(torch, comfy, model, latent, noise, positive, sigmas, top: int = 25) -> list[dict]:
    """Device time per kernel name of one more step (CUDA profiler), the largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        one_step(comfy, model, latent, noise, positive, sigmas)
        torch.cuda.synchronize()
    totals: dict[str, list] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            entry = totals.setdefault(event.name[:120], [0.0, 0])
            entry[0] += event.device_time
            entry[1] += 1
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])
    rows = [{"kernel": name, "ms": round(us / 1000, 2), "calls": calls} for name, (us, calls) in ranked[:top]]
    rows.append({"kernel": "(all)", "ms": round(sum(us for us, _ in totals.values()) / 1000, 2),
                 "calls": sum(c for _, c in totals.values())})  # fmt: skip
    return rows


def time_modes(args, torch, comfy, base, inputs: tuple, on_cuda: bool) -> dict:
    """One step per mode of ``args.modes`` (stock first): step times, peak memory, distance to stock."""
    from rtv.patches.attention import MonarchSettings, apply_monarch_attention

    latent, noise, positive, sigmas = inputs
    rows, reference = {}, None
    for mode in args.modes:
        settings = MODES[mode]
        model = base if settings is None else apply_monarch_attention(base, MonarchSettings(**settings))
        if on_cuda:
            torch.cuda.reset_peak_memory_stats()
        seconds, all_times, out = one_step_seconds(torch, comfy, model, latent, noise, positive, sigmas, args.repeats)
        row = {
            "step_ms": round(seconds * 1000, 1),
            "repeats_ms": [round(t * 1000, 1) for t in all_times],
            "peak_device_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_cuda else None,
        }
        if reference is None:
            reference = out.float()
        else:
            row["rel_l2_vs_stock"] = round(float((out.float() - reference).norm() / reference.norm()), 4)
        if getattr(args, "profile", False) and on_cuda:
            row["top_kernels"] = profile_step(torch, comfy, model, latent, noise, positive, sigmas)
        rows[mode] = row
        print(f"  {mode}: {row['step_ms']} ms", flush=True)
    if "stock" in rows:
        for row in rows.values():
            row["speedup_vs_stock"] = round(rows["stock"]["step_ms"] / row["step_ms"], 3)
    return rows


def bench_size(args, torch, comfy, size: dict, frames: int) -> dict:
    on_cuda = torch.cuda.is_available() and not args.tiny
    dtype = torch.bfloat16 if on_cuda else torch.float32
    device = "cuda" if on_cuda else "cpu"
    t0 = time.time()
    sd = random_wan_state_dict(size["config"], dtype, device)
    base = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype})
    del sd
    build_s = time.time() - t0
    g = torch.Generator().manual_seed(0)
    lat_frames = (frames - 1) // 4 + 1
    shape = (1, 16, lat_frames, size["height"] // 8, size["width"] // 8)
    latent = torch.zeros(shape)
    noise = torch.randn(shape, generator=g)
    positive = [[torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=g), {}]]
    sigmas = torch.tensor([0.9, 0.0])  # one Euler step = one model call
    tokens = lat_frames * (size["height"] // 16) * (size["width"] // 16)

    rows = time_modes(args, torch, comfy, base, (latent, noise, positive, sigmas), on_cuda)
    return {
        "label": size.get("label", "tiny"),
        "config": size["config"],
        "latent": list(shape),
        "tokens": tokens,
        "build_s": round(build_s, 1),
        "modes": rows,
    }


def print_step_table(results: dict, label: str) -> None:
    """The per-mode step times of every case (``bench_size``'s records) as a table."""
    width = max([len(label), *map(len, results)])
    print(f"\n{label:<{width}} {'mode':<11} {'step ms':>9} {'x stock':>8} {'rel L2':>8} {'peak GiB':>9}")
    for name, r in results.items():
        if "skipped" in r:
            print(f"{name:<{width}} skipped: {r['skipped'][:60]}")
            continue
        for mode, row in r["modes"].items():
            print(f"{name:<{width}} {mode:<11} {row['step_ms']:>9} {row.get('speedup_vs_stock', '-'):>8} "
                  f"{row.get('rel_l2_vs_stock', '-'):>8} {str(row['peak_device_gib']):>9}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", default=str(REPO / ".host" / "ComfyUI"))
    ap.add_argument("--sizes", default="1.3b,14b", help=f"comma list of {list(SIZES)}")
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma list of {list(MODES)} (stock first)")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per mode after one warm-up")
    ap.add_argument("--tiny", action="store_true", help="toy size on the CPU: a smoke test of this script")
    ap.add_argument("--profile", action="store_true", help="CUDA: device time per kernel of one more step per mode")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/e2e_wan_<device>.json)")
    args = ap.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in args.modes if m not in MODES]
    if unknown:
        raise SystemExit(f"unknown modes {unknown}: use {list(MODES)}")

    sys.path.insert(0, args.comfy_dir)
    sys.path.insert(0, str(REPO / "tools"))
    import comfy.cli_args
    import torch

    on_cuda = torch.cuda.is_available() and not args.tiny
    comfy.cli_args.args.cpu = not on_cuda
    # Keep the whole model resident: ComfyUI's partial (low-VRAM) loading would time weight
    # transfers instead of attention, and differently per mode.
    comfy.cli_args.args.highvram = on_cuda
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    from pack_import import load_pack

    load_pack("rtv")

    results = {}
    sizes = {"tiny": TINY} if args.tiny else {s.strip(): SIZES[s.strip()] for s in args.sizes.split(",")}
    frames = 9 if args.tiny else args.frames
    for name, size in sizes.items():
        print(f"{name}: {size.get('label', 'tiny')}", flush=True)
        try:
            results[name] = bench_size(args, torch, comfy, size, frames)
        except torch.OutOfMemoryError as e:  # the 14B shape may not fit next to its activations
            results[name] = {"label": size.get("label"), "skipped": f"out of device memory: {e}"[:300]}
            print("  skipped: out of device memory", flush=True)
        import comfy.model_management as mm

        mm.unload_all_models()
        mm.soft_empty_cache()

    targets = {}
    m13 = results.get("1.3b", {}).get("modes", {})
    if "monarch" in m13 and "stock" in m13:
        targets[f"1.3B 480p step, node default >= {TARGET_SPEEDUP_1_3B}x stock"] = (
            m13["monarch"]["speedup_vs_stock"] >= TARGET_SPEEDUP_1_3B
        )
    if "monarch_rt" in m13 and "stock" in m13:
        targets[f"1.3B 480p step, plain MonarchRT >= {TARGET_SPEEDUP_1_3B}x stock"] = (
            m13["monarch_rt"]["speedup_vs_stock"] >= TARGET_SPEEDUP_1_3B
        )
    device_name = torch.cuda.get_device_name() if on_cuda else "cpu"
    info = {
        "device": device_name,
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "triton": __import__("triton").__version__ if on_cuda else None,
        "dtype": "bfloat16" if on_cuda else "float32",
        "frames": frames,
        "step": "comfy.sample.sample_custom, euler, sigmas [0.9, 0.0], cfg 1 (one model call)",
        "sizes": results,
        "targets": targets,
    }
    tag = "tiny_cpu" if not on_cuda else device_name.lower().replace("nvidia ", "").split()[0]
    out = Path(args.out or REPO / "bench" / "results" / f"e2e_wan_{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=1) + "\n")

    print_step_table(results, "size")
    for name, ok in targets.items():
        print(f"{('PASS' if ok else 'MISS') if on_cuda else 'n/a (CPU smoke run)'}  {name}")
    print(f"\n{device_name}, torch {info['torch']}, cuDNN {info['cudnn']}, triton {info['triton']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
