"""What stage 1's roundings cost: the GPU stage 1's number formats emulated on CPU, against float64.

The Gluon stage 1 rounds three things the torch reference keeps exact: the operands of aL = R K, the
operands of Y = R V, and aL / Y themselves (float16 scratch). This script applies each candidate's
roundings to the reference's R, K and V, keeps everything else (logits, softmaxes, stage 2) in float64,
and prints the relative L2 of the output against the float64 reference on the same bfloat16 inputs
(structured video-like q, k, v: `bench/structured_inputs.py`). No GPU; one iteration, no exact local
tiles. Writes JSON.

Variants:

* ``scratch only``: aL and Y exact, then rounded to float16 (the floor every variant shares);
* ``hi + lo bf16`` (the Gluon default until session 17): aL from R as two bfloat16 terms, Y from one;
* ``FP16_KEYS`` (session 17): aL from R as one float16 term against float16 keys, Y from one bfloat16 term;
* ``one bf16 term`` (session 17's timing probe, not offered): aL and Y from one bfloat16 term of R.

    python bench/stage1_numerics.py --out bench/results/stage1_numerics_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))
from pack_import import load_pack  # noqa: E402
from structured_inputs import structured_video_qkv  # noqa: E402

load_pack("rtv")
from rtv.kernels.monarch import reference as ref  # noqa: E402


def rounded(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x.to(dtype).to(torch.float64)


def hi_lo(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as the sum of two terms of ``dtype`` (what the hi + lo products multiply)."""
    hi = rounded(x, dtype)
    return hi + rounded(x - hi, dtype)


def exact_r(r: torch.Tensor) -> torch.Tensor:
    return r


VARIANTS = {
    "scratch only": (None, exact_r, exact_r),
    "hi + lo bf16": (None, lambda r: hi_lo(r, torch.bfloat16), lambda r: rounded(r, torch.bfloat16)),
    "FP16_KEYS": (torch.float16, lambda r: rounded(r, torch.float16), lambda r: rounded(r, torch.bfloat16)),
    "one bf16 term": (None, lambda r: rounded(r, torch.bfloat16), lambda r: rounded(r, torch.bfloat16)),
}
"""name -> (the type stage 1 turns queries and keys into, or None for the inputs' bfloat16; R as aL's
product takes it; R as Y's product takes it)."""


def output(Qu, K, V, scale, key_dtype, r_for_al, r_for_y, scratch_dtype=torch.float16) -> torch.Tensor:
    """One-iteration Monarch with stage 1's operands rounded and aL / Y stored as ``scratch_dtype`` (None:
    exact). ``Qu``: the unscaled queries (the kernels scale the logits after the product)."""
    q1, k1 = (Qu, K) if key_dtype is None else (rounded(Qu, key_dtype), rounded(K, key_dtype))
    log_r = ref.log_R(ref.aR_mean_first(q1 * scale), k1)
    R = log_r.exp()
    al, y = ref.aL(r_for_al(R), k1), ref.Y(r_for_y(R), V)
    if scratch_dtype is not None:
        al, y = rounded(al, scratch_dtype), rounded(y, scratch_dtype)
    logits = ref.L_logits(al, ref.cL(R, log_r), Qu * scale)
    log_l = logits - torch.logsumexp(logits, dim=(2, 4), keepdim=True)
    return ref.Z(log_l, y)


def numerics_args(description: str, heads: int):
    """Command line of the CPU numerics scripts: (args, grid, tokens, the reference's layout of the grid)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--grid", default="6,30,52", help="frames,height,width (default: 480p's frame, 6 frames)")
    parser.add_argument("--heads", type=int, default=heads)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    grid = tuple(int(x) for x in args.grid.split(","))
    tokens = grid[0] * grid[1] * grid[2]
    return args, grid, tokens, ref.monarch_layout(grid, tokens, tokens)


def main() -> None:
    args, grid, tokens, layout = numerics_args(__doc__.splitlines()[0], heads=4)
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    start = time.perf_counter()
    for seed in (int(s) for s in args.seeds.split(",")):
        q, k, v = structured_video_qkv(grid, heads=args.heads, seed=seed, dtype=torch.bfloat16)
        d = q.shape[-1]
        # the bfloat16 inputs are what every variant sees; the reference takes them exactly (the kernels scale
        # the logits in float32, so the scale is applied here in float64, not to the bfloat16 queries)
        Qu, K, V = (ref.to_tiles(x.reshape(-1, tokens, d).to(torch.float64), layout) for x in (q, k, v))
        exact = output(Qu, K, V, d**-0.5, None, exact_r, exact_r, scratch_dtype=None)
        for name, (key_dtype, r_for_al, r_for_y) in VARIANTS.items():
            error = float((output(Qu, K, V, d**-0.5, key_dtype, r_for_al, r_for_y) - exact).norm() / exact.norm())
            results[name].append(error)
            print(f"seed {seed} {name:14s} relative L2 {error:.2e}", flush=True)
    summary = {name: {"per_seed": errors, "mean": sum(errors) / len(errors)} for name, errors in results.items()}
    print(f"\n{'variant':16s} {'rel. L2 (mean)':>15s}")
    for name, entry in summary.items():
        print(f"{name:16s} {entry['mean']:15.2e}")
    record = {
        "what": "relative L2 of the one-iteration Monarch output vs float64, stage-1 roundings emulated",
        "grid": list(grid), "heads": args.heads, "inputs": "structured_video_qkv, bfloat16", "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start, 1), "variants": summary,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
