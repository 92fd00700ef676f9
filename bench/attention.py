"""Monarch attention (Triton) vs the best dense attention, side by side in one process (issue 5 item 3).

At the four shapes of DESIGN.md section 5 (bf16, batch 1, head dim 128), it times:

* cuDNN SDPA and torch's flash SDPA (``torch.nn.attention.sdpa_kernel``);
* SageAttention 1.0.6 (``sageattn``, int8 QK), when the package is importable;
* Monarch attention through ``monarch_attention(backend="triton")`` with the default tiles, with
  ``h_split=2``, and with ``iterations=2``.

Times are ``triton.testing.do_bench`` medians after a warm-up call (which also runs Monarch's
autotuning once, stored under ``~/.cache/comfyui-realtimevideo``). TFLOP/s-equivalent is the
dense count ``4 * B * H * Nq * Nk * D`` over the time, for every method. A CUDA-profiler pass
splits the default Monarch call into its kernels. Prints a table; writes JSON.

    python bench/attention.py                        # all shapes -> bench/results/attention_<gpu>.json
    python bench/attention.py --shapes chunk_last --out /tmp/a.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from pack_import import load_pack  # noqa: E402

load_pack("rtv")

from rtv.kernels.monarch import density, monarch_attention, monarch_layout  # noqa: E402

HEAD_DIM = 128
DTYPE = torch.bfloat16
WARMUP_MS = 100
REP_MS = 1000
"""do_bench budget per method: about a second of repeats, at least one for the slowest dense call."""


@dataclass(frozen=True)
class Shape:
    name: str
    heads: int
    grid: tuple[int, int, int]
    query_frames: int

    @property
    def query_tokens(self) -> int:
        return self.query_frames * self.grid[1] * self.grid[2]

    @property
    def key_tokens(self) -> int:
        return math.prod(self.grid)

    def dense_flops(self) -> float:
        return 4.0 * self.heads * self.query_tokens * self.key_tokens * HEAD_DIM


SHAPES = {
    "chunk_last": Shape("Self-Forcing last chunk", 12, (21, 30, 52), 3),
    "chunk_middle": Shape("Self-Forcing middle chunk", 12, (12, 30, 52), 3),
    "full_480p": Shape("Wan 1.3B 480p 81 frames", 12, (21, 30, 52), 21),
    "full_720p": Shape("Wan 14B 720p 81 frames", 40, (21, 45, 80), 21),
}

MONARCH_SETTINGS = {
    "monarch_default": {},  # the kernel API's default: plain MonarchRT (exact_local off)
    "monarch_node_default": {"exact_local": 1},  # RTV_MonarchAttention's default
    "monarch_h_split2": {"h_split": 2},
    "monarch_iterations2": {"iterations": 2},
}


def monarch_settings_for(shape: Shape) -> dict[str, dict]:
    """MONARCH_SETTINGS, with an h_split the grid does not allow replaced by its smallest valid one.

    (720p has 45 token rows: h_split 2 is rejected by the layout, so h_split 3 is timed instead.)
    """
    settings = {}
    for name, setting in MONARCH_SETTINGS.items():
        split = setting.get("h_split", 1)
        if shape.grid[1] % split:
            split = next(s for s in range(split, shape.grid[1] + 1) if shape.grid[1] % s == 0)
            name, setting = f"monarch_h_split{split}", {**setting, "h_split": split}
        settings[name] = setting
    return settings


def monarch_cost(shape: Shape, settings: dict) -> dict[str, float]:
    """Useful FLOPs of the two-stage kernels and the bytes their intermediates move through memory.

    Per (query tile, key tile) pair one stage-1 product is ``b1 * 2*b2*b2*D`` FLOPs (logits, aL,
    Y: three of them, Y in the final iteration only) and one stage-2 product ``b2 * 2*b1*b1*D``
    (logits and output: two in the final iteration; logits twice and aR in a refine pass).
    Bytes: aL and Y are written once and read once (bf16); a refine iteration writes aL, reads it
    twice, writes aR and reads it back.
    """
    tiling = {k: v for k, v in settings.items() if k in ("tile_frames", "h_split", "w_split")}
    layout = monarch_layout(shape.grid, shape.query_tokens, shape.key_tokens, **tiling)
    iterations = settings.get("iterations", 1)
    pairs = shape.heads * layout.query_tiles * layout.key_tiles
    b1, b2, d = layout.b1, layout.b2, HEAD_DIM
    stage1_product = pairs * b1 * 2 * b2 * b2 * d
    stage2_product = pairs * b2 * 2 * b1 * b1 * d
    flops = iterations * 2 * stage1_product + stage1_product + 2 * stage2_product
    flops += (iterations - 1) * 3 * stage2_product
    element_bytes = pairs * b1 * b2 * d * 2
    scratch_bytes = element_bytes * (4 + 5 * (iterations - 1))
    return {
        "flops": float(flops),
        "scratch_bytes": float(scratch_bytes),
        "density": density(layout, iterations),
    }


def timed(fn) -> float:
    import triton.testing

    fn()  # warm-up, compilation and (for Monarch) one-time autotuning stay out of the numbers
    torch.cuda.synchronize()
    return float(triton.testing.do_bench(fn, warmup=WARMUP_MS, rep=REP_MS, return_mode="median"))


def dense_methods(q, k, v) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(backend):
        def run():
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v)

        return run

    methods = {"cudnn_sdpa": sdpa(SDPBackend.CUDNN_ATTENTION), "flash_sdpa": sdpa(SDPBackend.FLASH_ATTENTION)}
    try:
        from sageattention import sageattn

        methods["sageattention"] = lambda: sageattn(q, k, v, tensor_layout="HND", is_causal=False)
    except ImportError as error:
        print(f"SageAttention not importable ({error}); skipped", flush=True)
    return methods


def kernel_breakdown(fn) -> dict[str, float]:
    """Milliseconds per kernel name of one call (CUDA profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        if event.device_type.name == "CUDA" or "kernel" in event.key:
            time_us = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0.0)
            if time_us:
                totals[event.key] = totals.get(event.key, 0.0) + time_us / 1000.0
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def bench_shape(key: str, shape: Shape) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(0)
    frames, h, w = shape.grid
    k = torch.randn(1, shape.heads, shape.key_tokens, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
    v = torch.randn(1, shape.heads, shape.key_tokens, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
    q = torch.randn(1, shape.heads, shape.query_tokens, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
    record: dict = {
        "shape": shape.name,
        "heads": shape.heads,
        "query_tokens": shape.query_tokens,
        "key_tokens": shape.key_tokens,
        "grid": list(shape.grid),
        "dense_flops": shape.dense_flops(),
        "methods": {},
    }
    methods = dense_methods(q, k, v)
    settings_used = monarch_settings_for(shape)
    record["monarch_settings"] = settings_used
    for name, settings in settings_used.items():
        methods[name] = lambda s=settings: monarch_attention(q, k, v, shape.grid, backend="triton", **s)
    for name, fn in methods.items():
        start = time.perf_counter()
        ms = timed(fn)
        entry = {"ms": ms, "tflops_equivalent": shape.dense_flops() / (ms * 1e-3) / 1e12}
        if name in settings_used:
            cost = monarch_cost(shape, settings_used[name])
            entry.update(cost)
            entry["useful_tflops"] = cost["flops"] / (ms * 1e-3) / 1e12
            entry["scratch_gb_per_s"] = cost["scratch_bytes"] / (ms * 1e-3) / 1e9
        entry["wall_s_including_warmup"] = time.perf_counter() - start
        record["methods"][name] = entry
        print(f"  {key:13s} {name:20s} {ms:9.3f} ms", flush=True)
    base = record["methods"]["cudnn_sdpa"]["ms"]
    flash = record["methods"]["flash_sdpa"]["ms"]
    for entry in record["methods"].values():
        entry["speedup_vs_cudnn"] = base / entry["ms"]
        entry["speedup_vs_flash"] = flash / entry["ms"]
    m = record["methods"]
    record["iterations2_over_iterations1"] = m["monarch_iterations2"]["ms"] / m["monarch_default"]["ms"]
    record["monarch_default_kernels_ms"] = kernel_breakdown(methods["monarch_default"])
    return record


L2_SWEEP = [  # (heads per launch, scratch MiB): 0 = all heads, 1024 = the default budget
    (0, 1024),
    (1, 48),
    (1, 24),
    (2, 48),
    (4, 96),
    (0, 2048),
    (0, 4608),
]
"""Launch layouts: per-launch intermediates (aL, Y) that fit in the 50 MB L2 of an H100, and budgets
larger than the default (fewer query-tile chunks; 4608 MiB holds all of 480p's in one launch)."""


def l2_sweep(key: str, shape: Shape) -> dict:
    """Default Monarch settings under smaller launches (RTV_MONARCH_HEADS_PER_LAUNCH / _SCRATCH_MB)."""
    import os

    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(1, shape.heads, shape.query_tokens, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
    k = torch.randn(1, shape.heads, shape.key_tokens, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
    v = torch.randn(1, shape.heads, shape.key_tokens, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
    rows = {}
    for exact_local in (-1, 1):
        for heads, mib in L2_SWEEP:
            os.environ["RTV_MONARCH_HEADS_PER_LAUNCH"] = str(heads)
            os.environ["RTV_MONARCH_SCRATCH_MB"] = str(mib)
            name = f"exact_local{exact_local}_heads{heads}_scratch{mib}"
            ms = timed(
                lambda el=exact_local: monarch_attention(
                    q, k, v, shape.grid, backend="triton", exact_local=el
                )
            )
            rows[name] = ms
            print(f"  {key:13s} {name:36s} {ms:9.3f} ms", flush=True)
    os.environ.pop("RTV_MONARCH_HEADS_PER_LAUNCH")
    os.environ.pop("RTV_MONARCH_SCRATCH_MB")
    return rows


def host_overhead_us(calls: int = 200) -> dict[str, float]:
    """Host (CPU) microseconds per call at the first Self-Forcing chunk (3 frames against 3),
    where the GPU work is tiny: launch and Python overhead, which bound a few-step causal
    sampler. Enqueue time of ``calls`` calls without a sync, then the device time per call."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    grid = (3, 30, 52)
    q, k, v = (
        torch.randn(1, 12, math.prod(grid), HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
        for _ in range(3)
    )
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    methods = {
        "cudnn_sdpa": cudnn,
        "monarch_default": lambda: monarch_attention(q, k, v, grid, backend="triton"),
        "monarch_node_default": lambda: monarch_attention(q, k, v, grid, backend="triton", exact_local=1),
    }
    rows = {}
    for name, fn in methods.items():
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        host = (time.perf_counter() - start) / calls
        torch.cuda.synchronize()
        rows[name] = {
            "host_us_per_call": round(host * 1e6, 1),
            "device_us_per_call": round(timed(fn) * 1e3, 1),
        }
        print(f"  overhead {name:22s} host {rows[name]['host_us_per_call']:8.1f} us  device "
              f"{rows[name]['device_us_per_call']:8.1f} us", flush=True)  # fmt: skip
    return rows


def versions() -> dict:
    import triton

    info = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "triton": triton.__version__,
        "python": platform.python_version(),
    }
    try:
        from importlib.metadata import version

        info["sageattention"] = version("sageattention")
    except Exception:  # noqa: BLE001 - absent package: the table says so
        info["sageattention"] = None
    return info


def print_table(result: dict) -> None:
    print(f"\n{result['versions']}")
    header = f"{'shape':28s} {'method':20s} {'ms':>9s} {'TFLOP/s-eq':>11s} {'x cuDNN':>8s} {'x flash':>8s}"
    print(header)
    print("-" * len(header))
    for record in result["shapes"].values():
        label = f"{record['shape']} ({record['heads']}, {record['query_tokens']} x {record['key_tokens']})"
        for name, entry in record["methods"].items():
            print(
                f"{label[:28]:28s} {name:20s} {entry['ms']:9.3f} {entry['tflops_equivalent']:11.1f} "
                f"{entry['speedup_vs_cudnn']:8.2f} {entry['speedup_vs_flash']:8.2f}"
            )
            label = ""
        print(f"{'':28s} iterations 2 / iterations 1 = {record['iterations2_over_iterations1']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {list(SHAPES)}"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/attention_<gpu>.json)"
    )
    parser.add_argument(
        "--l2-sweep", action="store_true", help="also time default Monarch under smaller launches (L2_SWEEP)"
    )
    parser.add_argument(
        "--overhead", action="store_true", help="also measure host microseconds per call (host_overhead_us)"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/attention.py needs a CUDA GPU")
    result = {"versions": versions(), "dtype": str(DTYPE), "head_dim": HEAD_DIM, "batch": 1, "shapes": {}}
    if args.overhead:
        result["host_overhead_first_chunk"] = host_overhead_us()
    for key in args.shapes.split(","):
        print(f"{key}: {SHAPES[key]}", flush=True)
        result["shapes"][key] = bench_shape(key, SHAPES[key])
        torch.cuda.empty_cache()  # the inputs of the last shape are gone with bench_shape's frame
        if args.l2_sweep:
            result["shapes"][key]["l2_sweep_ms"] = l2_sweep(key, SHAPES[key])
            torch.cuda.empty_cache()
    gpu = (
        "h100" if "H100" in result["versions"]["device"] else result["versions"]["device"].split()[-1].lower()
    )
    out = args.out or REPO / "bench" / "results" / f"attention_{gpu}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print_table(result)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
