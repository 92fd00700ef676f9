"""The DRAM read floor of Monarch's final stage 2: how fast this GPU reads the scratch the way stage 2 reads it.

Stage 2 gives each query column (a pair of query tile and column) one program. The program walks the column's
``key_rows`` rows of aL and of Y (contiguous, 256 bytes each at head dim 128) in blocks of 64 rows, and
gathers the column's cL (one float per key row, ``pairs`` floats apart). This times, on two 4 GiB buffers:
- a torch reduction over both (the read ceiling);
- the same programs as stage 2 with the products and softmax taken out (a running sum of each block);
- that, plus the strided cL gather.

With that, stage 2's time reads against the bytes it must read. Prints a table and writes JSON.

    python bench/read_bandwidth.py --out bench/results/read_bandwidth_h100.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import timed, versions  # noqa: E402

BUFFER_BYTES = 4 << 30
"""Per stream (aL, Y): 8 GiB read per pass, well past the 50 MB L2."""
KEY_ROWS = 945
"""720p's key rows (21 key tiles x 45 rows)."""
HEAD_DIM = 128


@triton.jit
def column_streams(AL, Y, CL, OUT, key_rows, pairs, GATHER: tl.constexpr, BLOCK_C: tl.constexpr,
                   HEAD_DIM: tl.constexpr):  # fmt: skip
    """Stage 2's loads for one column (program): aL and Y blocks of BLOCK_C rows, and optionally cL."""
    column = tl.program_id(0).to(tl.int64)
    base = column * key_rows * HEAD_DIM
    d = tl.arange(0, HEAD_DIM)
    acc = tl.zeros([BLOCK_C, HEAD_DIM], tl.float32)
    gathered = tl.zeros([BLOCK_C], tl.float32)
    for start in range(0, key_rows, BLOCK_C):
        c = start + tl.arange(0, BLOCK_C)
        offsets = base + c.to(tl.int64)[:, None] * HEAD_DIM + d[None, :]
        mask = (c < key_rows)[:, None]
        acc += tl.load(AL + offsets, mask=mask, other=0.0).to(tl.float32)
        acc += tl.load(Y + offsets, mask=mask, other=0.0).to(tl.float32)
        if GATHER:  # key-row major cL: this column's value of each key row, ``pairs`` floats apart
            group = column // pairs * key_rows * pairs
            gathered += tl.load(CL + group + c.to(tl.int64) * pairs + column % pairs, mask=c < key_rows, other=0.0)
    tl.store(OUT + column, tl.sum(tl.sum(acc, axis=1) + gathered, axis=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON path")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/read_bandwidth.py needs a CUDA GPU")
    columns = BUFFER_BYTES // (KEY_ROWS * HEAD_DIM * 2)
    aL = torch.randn(columns, KEY_ROWS, HEAD_DIM, device="cuda", dtype=torch.float16)
    Y = torch.randn_like(aL)
    pairs = 1680  # 720p: 21 query tiles x 80 columns
    cL = torch.randn(-(-columns // pairs) * KEY_ROWS * pairs, device="cuda")
    out = torch.empty(columns, device="cuda")
    read_bytes = 2 * aL.numel() * aL.element_size()
    rows = []

    def record(name: str, ms: float) -> None:
        # the gathered cL is not counted, as stage 2's nominal bytes do not count it
        rows.append({"pattern": name, "ms": ms, "gb": read_bytes / 1e9, "tb_per_s": read_bytes / ms / 1e9})

    record("torch sum of both buffers (read ceiling)", timed(lambda: (aL.sum(dtype=torch.float32),
                                                                      Y.sum(dtype=torch.float32))))  # fmt: skip
    for gather in (False, True):
        for block_c, warps, stages in ((64, 4, 2), (64, 4, 3), (32, 4, 4), (64, 8, 3)):
            launch = functools.partial(
                column_streams[(columns,)], aL, Y, cL, out, KEY_ROWS, pairs, GATHER=gather, BLOCK_C=block_c,
                HEAD_DIM=HEAD_DIM, num_warps=warps, num_stages=stages,
            )  # fmt: skip
            gathered = " + cL gather" if gather else ""
            record(f"stage-2 columns{gathered}: BLOCK_C {block_c}, {warps} warps, {stages} stages", timed(launch))
    print(f"{'pattern':72s} {'ms':>8s} {'GB':>6s} {'TB/s':>6s}")
    for row in rows:
        print(f"{row['pattern']:72s} {row['ms']:8.3f} {row['gb']:6.2f} {row['tb_per_s']:6.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"versions": versions(), "key_rows": KEY_ROWS, "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
