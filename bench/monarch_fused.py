"""The fused final iteration (one persistent kernel) against the two launches, side by side in one process.

For each shape of bench/attention.py and each setting, it times:

* ``separate``: stage 1 then stage 2, each with its tuned config (``RTV_MONARCH_FUSED=0``);
* every fused candidate (``triton_monarch.fused_candidates`` of those tuned configs), one at a time;
* ``auto``: what the tuner picks between them (the default);
* cuDNN SDPA, for the ratio the issue asks about.

It records how far the fused output is from the two launches' (zero when stage 2 runs with the same
warp count: same products in the same order, only the schedule differs) and splits one call of each
into kernels (CUDA profiler). Prints a table, writes JSON.

    python bench/monarch_fused.py --shapes full_480p,full_720p --out /tmp/fused.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import DTYPE, HEAD_DIM, SHAPES, kernel_breakdown, timed, versions  # noqa: E402

from rtv.kernels.monarch import monarch_attention  # noqa: E402
from rtv.kernels.monarch import triton_monarch as tm  # noqa: E402

SETTINGS = {"default": {}, "node_default": {"exact_local": 1}, "iterations2": {"iterations": 2}}


def _forget_plans() -> None:
    """Drop kept launch plans and the fused choice, so the next call plans under the current env."""
    tm._recipes.clear()
    for key in [key for key in tm._chosen if "|fused|" in key]:
        del tm._chosen[key]


def _set_env(fused: str, autotune: str) -> None:
    os.environ[tm.FUSED_ENV] = fused
    os.environ["RTV_MONARCH_AUTOTUNE"] = autotune
    _forget_plans()


def bench_setting(q, k, v, grid, settings: dict) -> dict:
    def call():
        return monarch_attention(q, k, v, grid, backend="triton", **settings)

    rows: dict[str, dict] = {}
    _set_env("0", "1")
    reference = call()
    rows["separate"] = {"ms": timed(call), "kernels_ms": kernel_breakdown(call)}
    chosen_separate = {key: config for key, config in tm._chosen.items() if "|stage1|" in key or "|stage2|" in key}

    original = tm.fused_candidates
    seen: list[dict] = []

    def record_candidates(stage1, stage2):
        configs = original(stage1, stage2)
        seen[:] = configs
        return configs

    tm.fused_candidates = record_candidates
    _set_env("1", "0")  # autotune off: the first (only) candidate runs untimed by the tuner
    call()
    candidates = list(seen)
    for config in candidates:
        tm.fused_candidates = lambda s1, s2, c=config: [c]
        _set_env("1", "0")
        out = call()
        name = "fused_" + ",".join(f"{key}={config[key]}" for key in ("TILES_PER_PROGRAM", "LAG", "BLOCK_C"))
        rows[name] = {
            "config": config,
            "ms": timed(call),
            "kernels_ms": kernel_breakdown(call),
            "max_abs_diff_vs_separate": (out.float() - reference.float()).abs().max().item(),
        }
    tm.fused_candidates = original
    _set_env("auto", "1")
    call()
    rows["auto"] = {"ms": timed(call), "chosen": {k: c for k, c in tm._chosen.items() if "|fused|" in k}}
    separate = rows["separate"]["ms"]
    for row in rows.values():
        row["speedup_vs_separate"] = separate / row["ms"]
    return {"rows": rows, "separate_configs": chosen_separate}


def cudnn_ms(q, k, v) -> float:
    def run():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="full_480p,full_720p,chunk_last")
    parser.add_argument("--settings", default="default,node_default", help=f"subset of {list(SETTINGS)}")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {"versions": versions(), "dtype": str(DTYPE), "head_dim": HEAD_DIM, "shapes": {}}
    for key in args.shapes.split(","):
        shape = SHAPES[key]
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (
            torch.randn(1, shape.heads, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
            for n in (shape.query_tokens, shape.key_tokens, shape.key_tokens)
        )
        entry = {"cudnn_sdpa_ms": cudnn_ms(q, k, v), "settings": {}}
        for name in args.settings.split(","):
            record = bench_setting(q, k, v, shape.grid, SETTINGS[name])
            for row in record["rows"].values():
                row["speedup_vs_cudnn"] = entry["cudnn_sdpa_ms"] / row["ms"]
            entry["settings"][name] = record
            for row_name, row in record["rows"].items():
                print(f"{key:11s} {name:13s} {row_name:44s} {row['ms']:9.3f} ms  "
                      f"x{row['speedup_vs_cudnn']:.2f} cuDNN  x{row['speedup_vs_separate']:.3f} separate",
                      flush=True)  # fmt: skip
        result["shapes"][key] = entry
        q = k = v = None
        torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
