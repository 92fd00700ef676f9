"""Streaming sampler throughput and peak GPU memory vs video length (issue: constant memory).

ComfyUI's own WanModel at Wan 2.1 1.3B size (dim 1536, 30 blocks, 12 heads) and the full-size Wan
2.1 VAE, random weights (speed and memory do not depend on weight values), loaded through ComfyUI's
real loaders; 480 x 832; chunks of 81 frames overlapping by 17; the same sampler for every length.
Prints a table and writes JSON.

    python bench/streaming.py --comfy-dir .host/ComfyUI --out bench/results/streaming_h100.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WAN_1_3B = dict(dim=1536, ffn=8960, layers=30)
TEXT_TOKENS = 512


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", default=str(REPO / ".host" / "ComfyUI"))
    ap.add_argument("--frames", default="81,241,481")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=81, help="chunk_frames (4a+1)")
    ap.add_argument("--overlap", type=int, default=17, help="overlap_frames (4m+1)")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--tiny", action="store_true", help="tiny model and size: a CPU smoke test of this script")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "streaming.json"))
    args = ap.parse_args()

    sys.path.insert(0, args.comfy_dir)
    sys.path.insert(0, str(REPO / "tools"))
    import comfy.cli_args
    import torch

    comfy.cli_args.args.cpu = not torch.cuda.is_available()
    import comfy.model_management
    import comfy.sd
    import tiny_models
    from pack_import import load_pack

    load_pack("rtv")
    from rtv.sampling.chunk_plan import plan_chunks
    from rtv.sampling.streaming import ChunkHooks, StreamingSampler, StreamSettings

    class MemoryTrace(ChunkHooks):
        """Device memory still allocated after each chunk: flat if nothing leaks between chunks."""

        def __init__(self):
            self.allocated_gib, self.loaded_models = [], []

        def chunk_finished(self, plan, report, frames, chunk_latents):
            if torch.cuda.is_available():
                self.allocated_gib.append(round(torch.cuda.memory_allocated() / 2**30, 3))
            self.loaded_models.append(len(comfy.model_management.current_loaded_models))

    if args.tiny:
        width, height, frames = 64, 48, [int(f) for f in args.frames.split(",")][:2]
    else:
        width, height, frames = args.width, args.height, [int(f) for f in args.frames.split(",")]
        tiny_models.TINY_WAN_DIM, tiny_models.TINY_WAN_FFN = WAN_1_3B["dim"], WAN_1_3B["ffn"]
        tiny_models.TINY_WAN_LAYERS = WAN_1_3B["layers"]
        tiny_models.TINY_VAE_BASE_DIM = 96  # the real Wan 2.1 VAE width
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    t0 = time.time()
    model = comfy.sd.load_diffusion_model_state_dict(tiny_models.tiny_wan_state_dict("t2v", seed=0, dtype=dtype))
    from comfy.ldm.wan.vae import WanVAE

    vae_module = WanVAE(dim=tiny_models.TINY_VAE_BASE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                        attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    vae = comfy.sd.VAE(sd=tiny_models._randomize(vae_module, seed=1))
    build_s = time.time() - t0
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, TEXT_TOKENS, 4096, generator=g), {}]]
    negative = [[torch.zeros(1, TEXT_TOKENS, 4096), {}]]
    settings = StreamSettings(width=width, height=height, steps=args.steps, cfg=1.0, sampler_name="euler",
                              scheduler="simple")
    device = comfy.model_management.get_torch_device()
    rows = []
    for total in frames:
        plan = plan_chunks(total, args.chunk if not args.tiny else 9, args.overlap if not args.tiny else 5, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t1 = time.time()
        trace = MemoryTrace()
        result = StreamingSampler(model, positive, negative, vae, plan, settings, hooks=trace).run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - t1
        rows.append({
            "frames": int(result.images.shape[0]), "chunks": len(plan.chunks), "seconds": round(seconds, 2),
            "frames_per_s": round(result.images.shape[0] / seconds, 2),
            "first_chunk_s": result.reports[0].seconds,
            "peak_device_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if device.type == "cuda" else None,
            "peak_working_mib": round(result.peak_working_bytes / 2**20, 1),
            "allocated_gib_after_each_chunk": trace.allocated_gib, "loaded_models": trace.loaded_models,
        })
        del result
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
            "model": "ComfyUI WanModel " + ("tiny" if args.tiny else "Wan 2.1 1.3B size (dim 1536, 30 blocks)"),
            "dtype": str(dtype), "resolution": f"{width}x{height}", "chunk_frames": args.chunk, "overlap_frames": args.overlap,
            "steps_per_chunk": args.steps, "cfg": 1.0, "sampler": "euler", "attention": "ComfyUI default (dense)",
            "model_and_vae_build_s": round(build_s, 1), "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(info, indent=1) + "\n")
    print(f"{'frames':>7} {'chunks':>6} {'s':>8} {'frames/s':>9} {'first chunk s':>14} {'peak GiB':>9} {'working MiB':>12}")
    for r in rows:
        print(f"{r['frames']:>7} {r['chunks']:>6} {r['seconds']:>8} {r['frames_per_s']:>9} {r['first_chunk_s']:>14} "
              f"{str(r['peak_device_gib']):>9} {r['peak_working_mib']:>12}")
    for r in rows:
        print("allocated after each chunk (GiB):", r["allocated_gib_after_each_chunk"], "loaded:", r["loaded_models"])
    print(f"device {info['device']}, torch {info['torch']}, {info['model']}, {info['resolution']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
