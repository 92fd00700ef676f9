"""Accuracy of Monarch attention vs dense attention on structured video-like inputs (issue 3 item 6).

For each grid, in full mode (all frames query all frames) and chunk mode (the last frames query
the whole cache), and for each setting (tiling, iterations, exact local tiles) it reports the
relative L2 error and cosine of the attention output vs dense SDPA, the median per-token relative
error, the effective density (fraction of the dense cost, exact local tiles included) and the
wall time of the torch reference on the device used. Prints a table, writes JSON to
``bench/results/monarch_quality_<device>.json``.

    python bench/monarch_quality.py                  # CPU: reduced grids, a few minutes
    python bench/monarch_quality.py --device cuda    # the full Wan 480p grid 21 x 30 x 52

The inputs come from ``bench/structured_inputs.py`` (Wan 3D RoPE on positional + content + sparse
semantic + noise); a component ablation on the first grid shows which part of the structure
Monarch misses.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))

from pack_import import load_pack  # noqa: E402
from structured_inputs import StructureStrengths, attention_diagnostics, structured_video_qkv  # noqa: E402

load_pack("rtv")

from rtv.kernels.monarch import density, monarch_attention, monarch_layout  # noqa: E402

CPU_GRIDS = "6x10x16,4x14x26"
CUDA_GRIDS = "21x30x52"
CHUNK_FRAMES = {"cpu": 2, "cuda": 3}
"""Query frames in chunk mode: Self-Forcing's 3-frame chunk on the full grid."""
ITERATIONS = (1, 2, 3)
EXACT_LOCAL = (-1, 0, 1)
ABLATION_SETTINGS = ({}, {"iterations": 3}, {"exact_local": 0})


@dataclass(frozen=True)
class Setting:
    tile_frames: int = 1
    h_split: int = 1
    w_split: int = 1
    iterations: int = 1
    exact_local: int = -1

    def label(self) -> str:
        parts = [f"tf{self.tile_frames} hs{self.h_split} ws{self.w_split} it{self.iterations}"]
        if self.exact_local >= 0:
            parts.append(f"local{self.exact_local}")
        return " ".join(parts)


def tilings(grid: tuple[int, int, int], query_frames: int) -> list[dict[str, int]]:
    """Default tile, h_split 2, tile_frames 2 (or the smallest >1 that divides), w_split 2."""
    frames, height, width = grid
    result = [{}]
    if height % 2 == 0:
        result.append({"h_split": 2})
    tied = next((t for t in range(2, frames + 1) if frames % t == 0 and query_frames % t == 0), None)
    if tied is not None:
        result.append({"tile_frames": tied})
    if width % 2 == 0:
        result.append({"w_split": 2})
    return result


def settings_for(grid: tuple[int, int, int], query_frames: int) -> list[Setting]:
    return [
        Setting(**tiling, iterations=iterations, exact_local=local)
        for tiling in tilings(grid, query_frames)
        for iterations in ITERATIONS
        for local in EXACT_LOCAL
    ]


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> tuple[torch.Tensor, float]:
    """Result and the median wall time in milliseconds."""
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        out = fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return out, sorted(times)[len(times) // 2]


def compare(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    out, ref = out.double(), ref.double()
    per_token = (out - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)
    return {
        "rel_l2": ((out - ref).norm() / ref.norm()).item(),
        "cosine": F.cosine_similarity(out.flatten(), ref.flatten(), dim=0).item(),
        "median_token_rel": per_token.median().item(),
    }


def run_case(q, k, v, grid, setting: Setting, dense_out, device: str, repeats: int) -> dict:
    kwargs = asdict(setting)
    out, ms = timed(lambda: monarch_attention(q, k, v, grid, backend="torch", **kwargs), device, repeats)
    layout = monarch_layout(
        grid,
        q.shape[-2],
        k.shape[-2],
        tile_frames=setting.tile_frames,
        h_split=setting.h_split,
        w_split=setting.w_split,
    )
    return {
        "setting": kwargs,
        "label": setting.label(),
        "b1": layout.b1,
        "b2": layout.b2,
        "density": density(layout, setting.iterations, setting.exact_local),
        "torch_ms": ms,
        **compare(out, dense_out),
    }


def print_table(title: str, rows: list[dict], dense_ms: float) -> None:
    print(f"\n{title}   (dense SDPA {dense_ms:.1f} ms)")
    print(
        f"{'setting':<28}{'b1xb2':>8}{'density':>9}{'rel L2':>9}{'cosine':>9}{'med tok':>9}{'torch ms':>10}"
    )
    for row in rows:
        print(
            f"{row['label']:<28}{row['b1']:>4}x{row['b2']:<3}{row['density']:>9.3f}{row['rel_l2']:>9.4f}"
            f"{row['cosine']:>9.5f}{row['median_token_rel']:>9.4f}{row['torch_ms']:>10.1f}"
        )


def bench_grid(grid, mode: str, query_frames: int, args, device: str) -> dict:
    q, k, v = structured_video_qkv(
        grid,
        query_frames=query_frames,
        heads=args.heads,
        head_dim=args.head_dim,
        seed=args.seed,
        device=device,
    )
    dense_out, dense_ms = timed(lambda: F.scaled_dot_product_attention(q, k, v), device, args.repeats)
    monarch_attention(q, k, v, grid, backend="torch")  # warm-up (allocator, kernels)
    rows = [
        run_case(q, k, v, grid, s, dense_out, device, args.repeats) for s in settings_for(grid, query_frames)
    ]
    title = f"grid {grid} {mode}: {query_frames} query frames, {args.heads} heads x {args.head_dim}"
    print_table(title, rows, dense_ms)
    return {
        "grid": list(grid),
        "mode": mode,
        "query_frames": query_frames,
        "q_shape": list(q.shape),
        "k_shape": list(k.shape),
        "dense_sdpa_ms": dense_ms,
        "attention": attention_diagnostics(q, k, grid),
        "results": rows,
    }


def ablation(grid, args, device: str) -> list[dict]:
    """Which part of the structure Monarch misses: each component alone and in pairs."""
    full = StructureStrengths()
    off = replace(full, positional=0.0, content=0.0, semantic=0.0, noise=0.0)
    variants = {
        "positional": replace(off, positional=full.positional),
        "positional+noise": replace(off, positional=full.positional, noise=full.noise),
        "positional+content": replace(off, positional=full.positional, content=full.content),
        "positional+semantic": replace(off, positional=full.positional, semantic=full.semantic),
        "all": full,
    }
    rows = []
    print(f"\ncomponent ablation, grid {grid} full mode (rel L2 vs dense)")
    print(f"{'inputs':<22}" + "".join(f"{Setting(**s).label():>26}" for s in ABLATION_SETTINGS))
    for name, strengths in variants.items():
        q, k, v = structured_video_qkv(
            grid, heads=args.heads, head_dim=args.head_dim, strengths=strengths, seed=args.seed, device=device
        )
        dense_out = F.scaled_dot_product_attention(q, k, v)
        errors = [compare(monarch_attention(q, k, v, grid, **s), dense_out) for s in ABLATION_SETTINGS]
        rows.append(
            {
                "inputs": name,
                "strengths": asdict(strengths),
                "attention": attention_diagnostics(q, k, grid),
                "results": [{"setting": s, **e} for s, e in zip(ABLATION_SETTINGS, errors)],
            }
        )
        print(f"{name:<22}" + "".join(f"{e['rel_l2']:>26.4f}" for e in errors))
    return rows


def parse_grids(text: str) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in g.split("x")) for g in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--grids", default=None, help=f"FxHxW list; default {CPU_GRIDS} on CPU, {CUDA_GRIDS} on CUDA"
    )
    parser.add_argument("--chunk-frames", type=int, default=None, help="query frames in chunk mode")
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case (median)")
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = args.device
    grids = parse_grids(args.grids or (CUDA_GRIDS if device == "cuda" else CPU_GRIDS))
    chunk_frames = args.chunk_frames or CHUNK_FRAMES[device]
    args.repeats = args.repeats or (3 if device == "cuda" else 1)
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    out = args.out or REPO / "bench" / "results" / f"monarch_quality_{device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "device_kind": device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "heads": args.heads,
        "head_dim": args.head_dim,
        "seed": args.seed,
        "dtype": "float32",
        "strengths": asdict(StructureStrengths()),
        "density_formula": "(iterations*(b1+b2)*monarch_tiles + b1*b2*local_tiles) / (b1*b2*key_tiles), per query",
        "cases": [],
        "ablation": [],
    }

    def save() -> None:  # after every case, so a run cut short keeps what it measured
        record["total_s"] = time.perf_counter() - started
        out.write_text(json.dumps(record, indent=1) + "\n")

    with torch.no_grad():
        for grid in grids:
            record["cases"].append(bench_grid(grid, "full", grid[0], args, device))
            save()
            if chunk_frames < grid[0]:
                record["cases"].append(bench_grid(grid, "chunk", chunk_frames, args, device))
                save()
        if not args.no_ablation:
            record["ablation"] = ablation(grids[0], args, device)
    save()
    print(f"\nwrote {out} ({record['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
