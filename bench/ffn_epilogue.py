"""Wan's MLP with its GELU in the first product's epilogue: which GELU it is, and what it saves.

Wan's FFN is ``Linear -> GELU(approximate="tanh") -> Linear``; stock ComfyUI runs the GELU as its own
pass over a [tokens, ffn_dim] tensor (at 480p, 1.3B: 32760 x 8960 bf16 read and written, ~0.4 ms a
block on an H100). ``torch._addmm_activation(..., use_gelu=True)`` asks cuBLASLt for a GELU epilogue
instead. That op is private and its GELU is not documented: on the CPU it is the exact (erf) GELU. So
this bench measures, on the GPU, which one it computes (regression of its difference to the tanh
GELU onto erf - tanh, over millions of elements: 0 = tanh, 1 = erf) and the time of both MLPs at the
1.3B 480p and 14B 720p shapes, side by side. Prints a table, writes JSON.

    python bench/ffn_epilogue.py            # CUDA
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SHAPES = {  # tokens, dim, ffn_dim
    "1.3b_480p": (32760, 1536, 8960),
    "14b_720p": (75600, 5120, 13824),
}


def timed_ms(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def which_gelu(dtype: torch.dtype) -> dict:
    """Regression coefficient of (epilogue - tanh GELU) onto (erf GELU - tanh GELU)."""
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(8192, 1024, device="cuda", generator=g).to(dtype)
    w = (torch.randn(2048, 1024, device="cuda", generator=g) / 32).to(dtype)
    b = torch.randn(2048, device="cuda", generator=g).to(dtype)
    fused = torch._addmm_activation(b, x, w.t(), use_gelu=True).double()
    pre = F.linear(x, w, b).double()  # rounded like the fused product's input to its epilogue, or close
    tanh, erf = F.gelu(pre, approximate="tanh"), F.gelu(pre)
    direction = erf - tanh
    coefficient = float(((fused - tanh) * direction).sum() / (direction * direction).sum())
    return {
        "dtype": str(dtype).removeprefix("torch."),
        "erf_coefficient": round(coefficient, 4),
        "max_abs_vs_tanh": float((fused - tanh).abs().max()),
        "max_abs_vs_erf": float((fused - erf).abs().max()),
    }


def bench_shape(tokens: int, dim: int, ffn_dim: int) -> dict:
    g = torch.Generator(device="cuda").manual_seed(1)
    h = torch.randn(tokens, dim, device="cuda", generator=g, dtype=torch.bfloat16)
    w1 = (torch.randn(ffn_dim, dim, device="cuda", generator=g) / dim**0.5).to(torch.bfloat16)
    b1 = torch.randn(ffn_dim, device="cuda", generator=g).to(torch.bfloat16)
    w2 = (torch.randn(dim, ffn_dim, device="cuda", generator=g) / ffn_dim**0.5).to(torch.bfloat16)
    b2 = torch.randn(dim, device="cuda", generator=g).to(torch.bfloat16)

    def stock():
        return F.linear(F.gelu(F.linear(h, w1, b1), approximate="tanh"), w2, b2)

    def epilogue():
        return F.linear(torch._addmm_activation(b1, h, w1.t(), use_gelu=True), w2, b2)

    a, c = stock().float(), epilogue().float()
    stock_ms, epilogue_ms = timed_ms(stock), timed_ms(epilogue)
    return {
        "tokens": tokens, "dim": dim, "ffn_dim": ffn_dim,
        "stock_ms": round(stock_ms, 3), "epilogue_ms": round(epilogue_ms, 3),
        "saved_ms": round(stock_ms - epilogue_ms, 3),
        "rel_l2_epilogue_vs_stock": float((c - a).norm() / a.norm()),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/ffn_epilogue_<gpu>.json)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/ffn_epilogue.py needs a CUDA GPU")
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "gelu": [which_gelu(dt) for dt in (torch.bfloat16, torch.float16, torch.float32)],
        "shapes": {name: bench_shape(*shape) for name, shape in SHAPES.items()},
    }
    for row in result["gelu"]:
        print(f"{row['dtype']:9s} erf coefficient {row['erf_coefficient']:+.3f} (0 = tanh GELU, 1 = erf GELU); "
              f"max |diff| vs tanh {row['max_abs_vs_tanh']:.2e}, vs erf {row['max_abs_vs_erf']:.2e}")  # fmt: skip
    print(f"\n{'shape':10s} {'stock ms':>9s} {'epilogue ms':>12s} {'saved ms':>9s} {'rel L2':>9s}")
    for name, row in result["shapes"].items():
        print(f"{name:10s} {row['stock_ms']:9.3f} {row['epilogue_ms']:12.3f} {row['saved_ms']:9.3f} "
              f"{row['rel_l2_epilogue_vs_stock']:9.2e}")  # fmt: skip
    tag = result["device"].lower().replace("nvidia ", "").split()[0]
    out = Path(args.out or REPO / "bench" / "results" / f"ffn_epilogue_{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{result['device']}, torch {result['torch']}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
