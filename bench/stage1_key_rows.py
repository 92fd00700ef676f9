"""Stage 1 with float16 copies of bfloat16 keys and values vs converting them in registers, side by side.

``triton_monarch.stage1_key_rows`` converts k and v once per call when many blocks of query pairs read
each key row (``CONVERT_KEYS_MIN_PAIRS``). This times plain MonarchRT and the node default with the
rule on and off (the threshold set out of reach) in one process, at bench/attention.py's shapes, and
splits each call by kernel (CUDA profiler). Prints a table, writes JSON.

    python bench/stage1_key_rows.py --shapes full_480p,full_720p --out bench/results/stage1_key_rows_h100.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import DTYPE, HEAD_DIM, SHAPES, kernel_breakdown, monarch_attention, timed, versions  # noqa: E402

from rtv.kernels.monarch import triton_monarch  # noqa: E402

SETTINGS = {"plain": {}, "node_default": {"exact_local": 1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="chunk_last,full_480p,full_720p")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    threshold = triton_monarch.CONVERT_KEYS_MIN_PAIRS
    result = {**versions(), "threshold_pairs": threshold, "shapes": {}}
    for key in args.shapes.split(","):
        shape = SHAPES[key]
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (
            torch.randn(1, shape.heads, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
            for n in (shape.query_tokens, shape.key_tokens, shape.key_tokens)
        )
        rows = {}
        for name, settings in SETTINGS.items():
            outputs = {}
            for variant, pairs in (("in_registers", 1 << 62), ("converted_once", threshold)):
                triton_monarch.CONVERT_KEYS_MIN_PAIRS = pairs
                triton_monarch._recipes.clear()  # recorded launches hold the other variant's strides

                def call(s=settings, q=q, k=k, v=v, grid=shape.grid):
                    return monarch_attention(q, k, v, grid, backend="triton", **s)

                outputs[variant] = call().float()
                rows[f"{name}/{variant}"] = {"ms": timed(call), "kernels_ms": kernel_breakdown(call)}
                print(f"{key:11s} {name:13s} {variant:15s} {rows[f'{name}/{variant}']['ms']:8.3f} ms", flush=True)
            a, b = outputs["in_registers"], outputs["converted_once"]
            rows[f"{name}/max_abs_difference"] = float((a - b).abs().max())
        result["shapes"][key] = rows
    triton_monarch.CONVERT_KEYS_MIN_PAIRS = threshold
    print(json.dumps(result, indent=1)[:3000])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
