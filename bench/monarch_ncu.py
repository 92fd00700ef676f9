"""One Monarch call per shape inside an NVTX range ``monarch``, for Nsight Compute's counters.

The call is tuned and warmed first (outside the range), so the range holds exactly the launches of
one forward. Run under ncu, for example:

    ncu --clock-control none --nvtx --nvtx-include "monarch/" --section SpeedOfLight \\
        --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats \\
        python3 bench/monarch_ncu.py --shapes full_480p

Shapes and inputs are bench/attention.py's (random bf16, head dim 128); settings as keyword JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import DTYPE, HEAD_DIM, SHAPES, monarch_attention  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="full_480p", help="comma-separated keys of bench/attention.py SHAPES")
    parser.add_argument("--settings", default="{}", help='monarch_attention keywords as JSON, e.g. {"exact_local": 1}')
    args = parser.parse_args()
    settings = json.loads(args.settings)
    for key in args.shapes.split(","):
        shape = SHAPES[key]
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (
            torch.randn(1, shape.heads, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
            for n in (shape.query_tokens, shape.key_tokens, shape.key_tokens)
        )
        for _ in range(3):  # tuning (or the stored choice) and warm-up
            monarch_attention(q, k, v, shape.grid, backend="triton", **settings)
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_push("monarch")
        monarch_attention(q, k, v, shape.grid, backend="triton", **settings)
        torch.cuda.synchronize()
        torch.cuda.nvtx.range_pop()
        print(f"{key}: profiled one call with {settings}", flush=True)


if __name__ == "__main__":
    main()
