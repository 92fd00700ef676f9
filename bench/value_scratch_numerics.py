"""What storing Y (the R-weighted values) as int8 would cost: CPU emulation against float64.

Session 15 measured int8 Y rows (each row scaled by its absmax) at 10 % faster at 480p on the H100
(branch ``int8-values``); 25 % fewer scratch bytes is the last lever left inside the two-stage design.
This script prices its error on structured video-like inputs (``bench/structured_inputs.py``), also
with value *outlier channels* (two channels 20x larger, two with a +30 offset, as real DiT activations
have), against float16 and bfloat16 Y. ``int8 centred`` subtracts each key row's mean value first
(shared by all pairs; the mean would be added back in stage 2). aL is rounded to float16 as the kernels
store it; everything else is float64, one iteration, no exact local tiles. Writes JSON.

    python bench/value_scratch_numerics.py --out bench/results/value_scratch_numerics_cpu.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))
from pack_import import load_pack  # noqa: E402
from stage1_numerics import numerics_args, rounded  # noqa: E402
from structured_inputs import structured_video_qkv  # noqa: E402

load_pack("rtv")
from rtv.kernels.monarch import reference as ref  # noqa: E402

VARIANTS = ("float16", "bfloat16", "int8", "int8 centred")


def int8_rows(y: torch.Tensor) -> torch.Tensor:
    step = y.abs().amax(-1, keepdim=True) / 127
    return torch.where(step > 0, torch.round(y / torch.where(step > 0, step, 1)) * step, y)


def stored(y: torch.Tensor, V: torch.Tensor, variant: str) -> torch.Tensor:
    if variant in ("float16", "bfloat16"):
        return rounded(y, getattr(torch, variant))
    if variant == "int8":
        return int8_rows(y)
    row_mean = rounded(V.mean(-2), torch.float16)[:, None, :, None, :, :]  # [g, 1, n, 1, k, D] over (m, j)
    return int8_rows(y - row_mean) + row_mean


def output(Qu, K, V, scale, variant: str | None) -> torch.Tensor:
    log_r = ref.log_R(ref.aR_mean_first(Qu * scale), K)
    R = log_r.exp()
    al, y = ref.aL(R, K), ref.Y(R, V)
    if variant is not None:
        al, y = rounded(al, torch.float16), stored(y, V, variant)
    logits = ref.L_logits(al, ref.cL(R, log_r), Qu * scale)
    log_l = logits - torch.logsumexp(logits, dim=(2, 4), keepdim=True)
    return ref.Z(log_l, y)


def with_outlier_channels(v: torch.Tensor, seed: int) -> torch.Tensor:
    channels = torch.randperm(v.shape[-1], generator=torch.Generator().manual_seed(seed))[:4]
    v = v.float()
    v[..., channels[:2]] *= 20
    v[..., channels[2:]] += 30
    return v.to(torch.bfloat16)


def main() -> None:
    args, grid, tokens, layout = numerics_args(__doc__.splitlines()[0], heads=3)
    start, results = time.perf_counter(), {}
    for values in ("plain", "outlier channels"):
        errors = {name: [] for name in VARIANTS}
        for seed in (int(s) for s in args.seeds.split(",")):
            q, k, v = structured_video_qkv(grid, heads=args.heads, seed=seed, dtype=torch.bfloat16)
            if values != "plain":
                v = with_outlier_channels(v, seed)
            d = q.shape[-1]
            Qu, K, V = (ref.to_tiles(x.reshape(-1, tokens, d).to(torch.float64), layout) for x in (q, k, v))
            exact = output(Qu, K, V, d**-0.5, None)
            for name in VARIANTS:
                errors[name].append(float((output(Qu, K, V, d**-0.5, name) - exact).norm() / exact.norm()))
            print(values, seed, {n: f"{e[-1]:.2e}" for n, e in errors.items()}, flush=True)
        results[values] = {n: {"per_seed": e, "mean": sum(e) / len(e)} for n, e in errors.items()}
    print(f"\n{'values':18s}" + "".join(f"{n:>14s}" for n in VARIANTS))
    for values, entry in results.items():
        print(f"{values:18s}" + "".join(f"{entry[n]['mean']:14.2e}" for n in VARIANTS))
    record = {"what": "relative L2 of the one-iteration Monarch output vs float64, Y stored as each variant",
              "grid": list(grid), "heads": args.heads, "inputs": "structured_video_qkv, bfloat16",
              "torch": torch.__version__, "seconds": round(time.perf_counter() - start, 1), "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
