"""The Gluon stage 1 alone: its aL, Y and cL against the torch reference, and its time against the
Triton stage 1's kernel time inside a tuned call, on the H100 (issue 5).

For each shape: random bf16 inputs and the same with peaked queries (logit std 4), two heads compared
in float32 with the reference (relative L2 of aL, Y and cL; NaN check); then the kernel timed alone for a
few (key tiles per CTA, ring depth) settings, and the Triton forward profiled once for its stage-1 and
stage-2 kernels. Prints as it goes, writes JSON.

    python bench/gluon_stage1_probe.py --shapes full_480p,full_720p,chunk_last --out /tmp/gluon_stage1.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import SHAPES, timed, versions  # noqa: E402

from rtv.kernels.monarch import gluon_stage1, monarch_attention, monarch_layout  # noqa: E402

LOG2E = 1.4426950408889634
SETTINGS = ((7, 3), (4, 3), (21, 3), (2, 3))
"""(key tiles per CTA, TMA ring depth)."""


def reference_head(q, k, v, grid, query_frames, g):
    """aL, Y as [m, j, n, k, D] and cL (log2 units) as [m, j, n, k] of head g, float32."""
    frames, h, w = grid
    d = q.shape[-1]
    queries = q[0, g].float().view(query_frames, h, w, d)  # m, k, j
    keys = k[0, g].float().view(frames, h, w, d)  # n, k, i
    values = v[0, g].float().view(frames, h, w, d)
    log_r = torch.log_softmax(torch.einsum("mkjd,nkid->mnkji", queries, keys) * d**-0.5, dim=-1)
    r = log_r.exp()
    a_l = torch.einsum("mnkji,nkid->mjnkd", r, keys)
    y = torch.einsum("mnkji,nkid->mjnkd", r, values)
    c_l = (r * log_r).sum(-1).permute(0, 3, 1, 2) * LOG2E
    return a_l, y, c_l


def relative_l2(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def triton_kernel_ms(q, k, v, grid) -> dict:
    """Device time per kernel of one tuned Triton forward (the Gluon candidates are not offered)."""
    from rtv.kernels.monarch import triton_monarch

    offered = triton_monarch.stage1_candidates
    triton_monarch.stage1_candidates = lambda b2, bf16_products=0, gluon=False: offered(b2, bf16_products, False)
    try:
        monarch_attention(q, k, v, grid, backend="triton")
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(3):
                monarch_attention(q, k, v, grid, backend="triton")
            torch.cuda.synchronize()
    finally:
        triton_monarch.stage1_candidates = offered
    totals: dict = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            totals[event.name] = totals.get(event.name, 0.0) + event.device_time / 1000 / 3
    return {name: ms for name, ms in totals.items() if ms > 0.01}


def probe(key: str, with_triton: bool = True) -> dict:
    shape = SHAPES[key]
    frames, h, w = shape.grid
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(1, shape.heads, n, 128, device="cuda", dtype=torch.bfloat16, generator=gen)
        for n in (shape.query_tokens, shape.key_tokens, shape.key_tokens)
    )
    layout = monarch_layout(shape.grid, shape.query_tokens, shape.key_tokens)
    tiles = layout.query_tiles
    a_l, y = torch.empty(2, shape.heads, tiles, w, layout.key_tiles * h, 128, device="cuda",
                         dtype=torch.float16).unbind(0)  # fmt: skip
    c_l_out = torch.empty(shape.heads, layout.key_tiles * h, tiles * w, device="cuda")  # key-row major
    scale = 128**-0.5 * LOG2E

    def run(queries, config):
        launch = gluon_stage1.launcher(queries, layout, 0, tiles, -1, scale, config, first_iteration=True, final=True)
        launch(queries, k, v, a_l, a_l, y, c_l_out)

    entry: dict = {}
    for name, queries in (("random", q), ("peaked", 2.0 * q)):
        run(queries, gluon_stage1.CANDIDATES[0])
        torch.cuda.synchronize()
        for g in (0, shape.heads - 1):
            ref = reference_head(queries, k, v, shape.grid, shape.query_frames, g)
            got = (a_l[g].view(tiles, w, frames, h, 128), y[g].view(tiles, w, frames, h, 128),
                   c_l_out[g].view(frames, h, tiles, w).permute(2, 3, 0, 1))  # fmt: skip
            entry[f"{name}_head{g}"] = {
                "aL": relative_l2(got[0], ref[0]), "Y": relative_l2(got[1], ref[1]), "cL": relative_l2(got[2], ref[2]),
                "nan": any(bool(x.isnan().any()) for x in got),
            }  # fmt: skip
            print(key, name, g, entry[f"{name}_head{g}"], flush=True)
    configs = [{"impl": "gluon", "TILES": t, "STAGES": s} for t, s in SETTINGS]
    configs += [c for c in gluon_stage1.CANDIDATES if c not in configs]
    entry["gluon_ms"] = {
        "_".join(f"{k}{v}" for k, v in c.items() if k != "impl"): timed(lambda c=c: run(q, c)) for c in configs
    }
    print(key, "gluon", entry["gluon_ms"], flush=True)
    if with_triton:
        entry["triton_call_kernels_ms"] = triton_kernel_ms(q, k, v, shape.grid)
        print(key, "triton", entry["triton_call_kernels_ms"], flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="full_480p,full_720p,chunk_last")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-triton", action="store_true", help="time the Gluon candidates only")
    args = parser.parse_args()
    result = {"versions": versions(), "shapes": {}}
    for key in args.shapes.split(","):
        result["shapes"][key] = probe(key, with_triton=not args.no_triton)
        torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
