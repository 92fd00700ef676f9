"""Weight-free optical flow and flow interpolation speed at 480 x 832 (issues 7 and 8).

Time per frame pair of ``optical_flow`` (one direction) at several batch sizes, and time per output
frame of ``interpolate_frames`` (both flows + splatting + blending) for 1 and 3 in-between frames per
pair, on CUDA when present and on the CPU. Inputs are smooth random textures shifted by a few pixels
(speed does not depend on content much; accuracy is tested in tests/unit). Prints a table, writes JSON.

    python bench/flow.py --out bench/results/flow_<device>.json [--cpu-pairs 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 480, 832


def textured_pairs(batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(batch, 3, HEIGHT // 8 + 2, WIDTH // 8 + 2, generator=g)
    image = F.interpolate(base, size=(HEIGHT + 16, WIDTH + 16), mode="bicubic", align_corners=False).clamp(0, 1)
    a = image[:, :, 8:8 + HEIGHT, 8:8 + WIDTH]
    b = image[:, :, 5:5 + HEIGHT, 11:11 + WIDTH]  # a 3 px x / y shift
    return a.contiguous().to(device), b.contiguous().to(device)


def timed(fn, args: tuple, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn(*args)`` after one warm-up call (kernels, allocator)."""
    fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    return sorted(samples)[len(samples) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu-pairs", type=int, default=1, help="batch size on the CPU (0 skips the CPU)")
    ap.add_argument("--gpu-batches", default="1,8,32")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tools"))
    from pack_import import load_pack

    load_pack("rtv")
    from rtv.kernels.flow import optical_flow
    from rtv.kernels.interpolate import interpolate_frames

    rows = []
    targets = []
    if torch.cuda.is_available():
        targets += [(torch.device("cuda"), int(b)) for b in args.gpu_batches.split(",")]
    if args.cpu_pairs > 0:
        targets.append((torch.device("cpu"), args.cpu_pairs))
    with torch.inference_mode():
        for device, batch in targets:
            a, b = textured_pairs(batch, device)
            flow_s = timed(optical_flow, (a, b), device, args.repeats)
            row = {"device": device.type, "pairs": batch, "flow_ms_per_pair": round(1000 * flow_s / batch, 2)}
            for between in (1, 3):
                times = [(i + 1) / (between + 1) for i in range(between)]
                s = timed(interpolate_frames, (a, b, times), device, args.repeats)
                row[f"interpolate_ms_per_output_frame_{between}_between"] = round(1000 * s / (batch * between), 2)
            rows.append(row)
            print(row, flush=True)
    info = {
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__, "size": f"{WIDTH}x{HEIGHT}", "dtype": "float32", "rows": rows,
        "note": "flow = one direction; interpolation = both flows + splatting + blending, per output frame",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=1) + "\n")
    print(f"{'device':>6} {'pairs':>5} {'flow ms/pair':>13} {'interp ms/frame (1)':>20} {'(3)':>8}")
    for r in rows:
        print(f"{r['device']:>6} {r['pairs']:>5} {r['flow_ms_per_pair']:>13} "
              f"{r['interpolate_ms_per_output_frame_1_between']:>20} {r['interpolate_ms_per_output_frame_3_between']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
