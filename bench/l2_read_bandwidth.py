"""How fast many CTAs can each read the same few megabytes: the L2 rate a fused Monarch kernel would live on.

A kernel that never stores aL and Y (bench/notes_monarch_triton.md, "The fused kernel, priced again") gives
each CTA a few (query tile, column) pairs and makes it stream all of its head's keys and values (16.8 MB at
480p). Whether that is affordable depends on how fast the L2 serves one buffer to every SM at once, which no
DRAM benchmark says. Here every CTA reads a whole buffer of ``--sizes-mb`` in 64-row x 128 blocks of bf16
(256-byte rows, as the keys are), by plain loads that skip L1 (``.cg``) or by TMA (a tensor descriptor),
starting at the same block or each at its own. Reported: the bytes all CTAs read over the time (the rate the
SMs see) and, for contrast, one pass over a buffer far larger than L2 (DRAM). Prints a table, writes JSON.

    python bench/l2_read_bandwidth.py --out bench/results/l2_read_bandwidth_h100.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import timed, versions  # noqa: E402

ROWS = 64
D = 128


@triton.jit
def _read_plain(X, OUT, blocks, ROTATE: tl.constexpr, ROWS: tl.constexpr, D: tl.constexpr):
    pid = tl.program_id(0)
    rows = tl.arange(0, ROWS)
    d = tl.arange(0, D)
    acc = tl.zeros([ROWS, D], tl.float32)
    for i in range(blocks):
        b = (i + pid) % blocks if ROTATE else i
        acc += tl.load(X + (b * ROWS + rows).to(tl.int64)[:, None] * D + d[None, :], cache_modifier=".cg").to(tl.float32)
    tl.store(OUT + pid, tl.sum(acc))  # keeps the loads


@triton.jit
def _read_tma(desc, OUT, blocks, ROTATE: tl.constexpr, ROWS: tl.constexpr, D: tl.constexpr):
    pid = tl.program_id(0)
    acc = tl.zeros([ROWS, D], tl.float32)
    for i in range(blocks):
        b = (i + pid) % blocks if ROTATE else i
        acc += desc.load([b * ROWS, 0]).to(tl.float32)
    tl.store(OUT + pid, tl.sum(acc))


def measure(size_mb: float, ctas: int, how: str, rotate: bool) -> dict:
    """Every one of ``ctas`` programs reads the whole ``size_mb`` buffer once."""
    rows = int(size_mb * (1 << 20)) // (D * 2) // ROWS * ROWS
    x = torch.randn(rows, D, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(ctas, device="cuda", dtype=torch.float32)
    blocks = rows // ROWS
    if how == "tma":
        desc = TensorDescriptor(x, [rows, D], [D, 1], [ROWS, D])
        run = lambda: _read_tma[(ctas,)](desc, out, blocks, ROTATE=rotate, ROWS=ROWS, D=D, num_warps=4)  # noqa: E731
    else:
        run = lambda: _read_plain[(ctas,)](x, out, blocks, ROTATE=rotate, ROWS=ROWS, D=D, num_warps=4)  # noqa: E731
    ms = timed(run)
    read = ctas * rows * D * 2
    return {"size_mb": rows * D * 2 / (1 << 20), "ctas": ctas, "how": how, "rotate": rotate, "ms": ms,
            "bytes_read_by_ctas": read, "tb_per_s": read / (ms * 1e-3) / 1e12}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", default="4,16.8,33.6", help="buffers every CTA reads whole (MB)")
    parser.add_argument("--ctas-per-sm", default="1,2,4")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    result = {"versions": versions(), "sms": sms, "runs": []}
    print(f"{'MB':>6s} {'CTAs':>5s} {'loads':>6s} {'start':>8s} {'ms':>8s} {'TB/s':>6s}", flush=True)
    cases = [(float(s), sms * int(c), how, rotate) for s in args.sizes_mb.split(",") for c in args.ctas_per_sm.split(",")
             for how in ("plain", "tma") for rotate in (False, True)]  # fmt: skip
    for size_mb, ctas, how, rotate in cases:
        entry = measure(size_mb, ctas, how, rotate)
        result["runs"].append(entry)
        print(f"{entry['size_mb']:6.1f} {ctas:5d} {how:>6s} {'own' if rotate else 'same':>8s} {entry['ms']:8.3f} "
              f"{entry['tb_per_s']:6.2f}", flush=True)  # fmt: skip
    big = torch.randn(4 << 30 >> 1, device="cuda", dtype=torch.bfloat16)
    ms = timed(lambda: torch.sum(big, dtype=torch.float32))
    result["dram_reduction_tb_per_s"] = big.numel() * 2 / (ms * 1e-3) / 1e12
    print(f"DRAM: a reduction over 4 GiB reads {result['dram_reduction_tb_per_s']:.2f} TB/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
