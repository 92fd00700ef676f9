"""Accuracy of Monarch attention in HunyuanVideo-style joint attention (video + text tokens) vs dense.

HunyuanVideo attends over its video tokens and its text tokens together. The Monarch node gives the
video queries Monarch attention over the grid with the text keys exact (``extra_k``), and the text
queries dense attention over everything. This script measures that computation against dense joint
attention on structured video-like q, k, v (``bench/structured_inputs.py``) plus text tokens:

* text keys are random directions; each text token is "about" a region of the video: the queries of a
  random block of frames and rows lean towards it (so text takes a real share of those queries' mass);
* text queries are random (their outputs are exact by construction; they are reported apart).

For each setting it reports the relative L2 / cosine of the video queries' output against dense
joint attention, and the same setting's error on the video-only attention (no text) for comparison.
CPU float64, a reduced HunyuanVideo grid. Prints a table and writes JSON.

    python bench/monarch_quality_joint.py --out bench/results/monarch_quality_joint_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))
from monarch_quality import compare  # noqa: E402
from pack_import import load_pack  # noqa: E402
from structured_inputs import structured_video_qkv  # noqa: E402

load_pack("rtv")
from rtv.kernels.monarch import monarch_attention  # noqa: E402

SETTINGS = {"MonarchRT (exact_local -1)": {}, "exact_local 0": {"exact_local": 0},
            "node default (exact_local 1)": {"exact_local": 1}, "exact_local 1, iterations 2": {"exact_local": 1, "iterations": 2}}  # fmt: skip
TEXT_LOGIT = 15.0
"""Scaled logit of a video query with the text token its region is about (positional peaks are ~12): the
video queries then give text 13 % of their attention on average."""


def text_tokens(q: torch.Tensor, grid, count: int, seed: int):
    """Text keys, values and queries; the queries of one random region per text token lean towards it."""
    gen = torch.Generator().manual_seed(seed)
    b, h, n, d = q.shape
    frames, rows, cols = grid
    keys = torch.randn(b, h, count, d, generator=gen, dtype=q.dtype)
    keys = keys / keys.norm(dim=-1, keepdim=True) * math.sqrt(TEXT_LOGIT) * d**0.25
    q = q.clone().view(b, h, frames, rows, cols, d)
    for t in range(count):
        f0, r0 = (torch.randint(0, s, (1,), generator=gen).item() for s in (frames, rows))
        region = q[:, :, f0 : f0 + max(1, frames // 3), r0 : r0 + max(1, rows // 3)]
        region += keys[:, :, t, None, None, None, :]
    values = torch.randn(b, h, count, d, generator=gen, dtype=q.dtype)
    queries = torch.randn(b, h, count, d, generator=gen, dtype=q.dtype)
    return q.view(b, h, n, d), keys, values, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="9,12,20", help="frames,rows,columns of the video tokens")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--text", type=int, default=64, help="text tokens (HunyuanVideo pads to 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    grid = tuple(int(x) for x in args.grid.split(","))
    start = time.perf_counter()
    q, k, v = (x.double() for x in structured_video_qkv(grid, heads=args.heads, seed=args.seed))
    q, text_k, text_v, text_q = text_tokens(q, grid, args.text, args.seed)
    n = q.shape[2]
    joint_k, joint_v = torch.cat([k, text_k], dim=2), torch.cat([v, text_v], dim=2)
    dense_joint = F.scaled_dot_product_attention(torch.cat([q, text_q], dim=2), joint_k, joint_v)
    dense_video = F.scaled_dot_product_attention(q, k, v)
    text_share = float((torch.softmax(q @ joint_k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)[..., n:]).sum(-1).mean())
    rows = {}
    for name, setting in SETTINGS.items():
        joint = monarch_attention(q, k, v, grid, extra_k=text_k, extra_v=text_v, backend="torch", **setting)
        video_only = monarch_attention(q, k, v, grid, backend="torch", **setting)
        rows[name] = {"joint_video_queries": compare(joint, dense_joint[:, :, :n]),
                      "video_only": compare(video_only, dense_video)}  # fmt: skip
        print(f"{name:30s} joint rel L2 {rows[name]['joint_video_queries']['rel_l2']:.3f}  "
              f"video-only rel L2 {rows[name]['video_only']['rel_l2']:.3f}", flush=True)
    record = {"what": "Monarch with exact text keys vs dense joint attention (video queries), and video-only",
              "grid": list(grid), "heads": args.heads, "text_tokens": args.text, "mean_text_share": text_share,
              "inputs": "structured_video_qkv + text tokens leaning on regions, float64", "torch": torch.__version__,
              "seconds": round(time.perf_counter() - start, 1), "settings": rows}  # fmt: skip
    print(f"mean share of the video queries' attention on text: {text_share:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
