"""Wan 2.1 VAE decode speed (issue 9's end-to-end bound): where the 1.8 s per 81 frames at 480p goes.

The causal sampler's end-to-end frames/s on an H100 is held down by the full-size Wan VAE decode
(bench/notes_monarch_triton.md, session 3). This script times the decode of 21 latent frames
(81 frames at 832 x 480) in chunks of 3, the way the sampler does, with random weights of the
real width (speed does not depend on weight values), and counts its FLOPs, in variants:

* ``node``: ``StreamingWanDecoder.push`` per chunk, as the sampler runs it (on CUDA: channels-last,
  the residual blocks' passes fused by ``sampling/wan_vae_fused.py``, frames to the CPU per chunk);
* ``node_unfused``: the same with ComfyUI's own decoder forward (session 4's node path);
* ``device``: the same decoder calls with the frames kept on the device (the GPU's share);
* ``channels_last``: ``device`` with the decoder's weights and input in channels-last-3d layout
  (cuDNN's tensor-core convolutions want NDHWC; NCDHW inputs may be transposed per call);
* ``+benchmark`` / ``-benchmark`` after a name: with cuDNN's benchmark mode on / off (the node turns
  it on while it decodes; the bare ``device`` and ``channels_last`` leave torch's default, off).

Prints a table (seconds, TFLOP/s) and writes JSON; ``--tiny`` is a CPU check of the harness.

    python bench/vae_decode.py                 # CUDA, bf16, full size
    python bench/vae_decode.py --tiny          # CPU smoke run at a toy size
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

WAN_VAE_DIM = 96
VARIANTS = ("node", "node_unfused", "node-benchmark", "device", "channels_last", "channels_last+benchmark")


def build_vae(torch, dim: int):
    import comfy.sd
    import tiny_models
    from comfy.ldm.wan.vae import WanVAE

    module = WanVAE(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                    temperal_downsample=[False, True, True], dropout=0.0)  # fmt: skip
    return comfy.sd.VAE(sd=tiny_models._randomize(module, seed=1))


def set_conv_layout(torch, model, layout) -> None:
    """Put the 3D convolution weights in ``layout`` (Module.to(memory_format=) rejects 1-D params)."""
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 5:
                param.data = param.data.contiguous(memory_format=layout)


def decode_on_device(torch, vae, latents, chunk: int, memory_format):
    """The sampler's decode loop (one latent frame per decoder call, cache kept) without host copies."""
    from comfy.ldm.wan.vae import count_conv3d

    model = vae.first_stage_model
    cache = [None] * count_conv3d(model.decoder)
    outputs = []
    with torch.inference_mode():
        for start in range(0, latents.shape[2], chunk):
            x = model.conv2(latents[:, :, start : start + chunk].to(vae.vae_dtype).to(vae.device))
            x = x.contiguous(memory_format=memory_format)
            for i in range(x.shape[2]):
                outputs.append(model.decoder(x[:, :, i : i + 1], feat_cache=cache, feat_idx=[0]))
    return outputs


def decode_like_the_node(torch, vae, latents, chunk: int, cudnn_benchmark: bool = True, fused=None):
    from rtv.sampling.wan_vae_stream import StreamingWanDecoder

    decoder = StreamingWanDecoder(vae, cudnn_benchmark=cudnn_benchmark, fused=fused)
    return [decoder.push(latents[:, :, s : s + chunk]) for s in range(0, latents.shape[2], chunk)]


def profiled(torch, fn, rows: int = 12) -> dict:
    """One run under torch.profiler: the device's busy time against the wall time, and the top ops
    by device time (which kernels and copies the variants differ in)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    events = prof.key_averages()
    busy = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") / 1e6
    top = sorted(events, key=lambda e: e.self_device_time_total, reverse=True)[:rows]
    return {"wall_s": round(wall, 4), "device_busy_s": round(busy, 4),
            "top_ops": [{"op": e.key[:90], "calls": e.count, "device_ms": round(e.self_device_time_total / 1e3, 2)}
                        for e in top]}  # fmt: skip


def timed(torch, fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", default=str(REPO / ".host" / "ComfyUI"))
    ap.add_argument("--latent-frames", type=int, default=21)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--chunk", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run at a toy size")
    ap.add_argument("--profile", action="store_true", help="also profile one run per variant (CUDA)")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/vae_decode_<device>.json)")
    args = ap.parse_args()
    sys.path.insert(0, args.comfy_dir)
    import torch

    args.tiny = args.tiny or not torch.cuda.is_available()  # the full size is a GPU measurement
    if args.tiny:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        args.latent_frames, args.width, args.height, args.repeats = 4, 64, 48, 1
    import tiny_models
    from pack_import import load_pack
    from torch.utils.flop_counter import FlopCounterMode

    load_pack("rtv")

    vae = build_vae(torch, tiny_models.TINY_VAE_BASE_DIM if args.tiny else WAN_VAE_DIM)
    latents = torch.randn(1, 16, args.latent_frames, args.height // 8, args.width // 8,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    frames = 1 + 4 * (args.latent_frames - 1)
    import comfy.model_management

    comfy.model_management.load_models_gpu([vae.patcher])
    with FlopCounterMode(display=False) as counter:
        decode_on_device(torch, vae, latents, args.chunk, torch.contiguous_format)
    flops = counter.get_total_flops()

    rows, outputs = {}, {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        name, sign, suffix = variant.partition("+") if "+" in variant else variant.partition("-")
        if suffix not in ("", "benchmark"):
            raise SystemExit(f"unknown variant {variant!r}: use {list(VARIANTS)}")
        benchmark = (sign == "+") if suffix else None  # None: the variant's own choice
        torch.backends.cudnn.benchmark = bool(benchmark)
        if name in ("node", "node_unfused"):
            fused = False if name == "node_unfused" else None
            run = lambda b=benchmark is not False, f=fused: decode_like_the_node(torch, vae, latents, args.chunk, b, f)  # noqa: E731
        elif name in ("device", "channels_last"):
            layout = torch.channels_last_3d if name == "channels_last" else torch.contiguous_format
            set_conv_layout(torch, vae.first_stage_model, layout)
            run = lambda layout=layout: decode_on_device(torch, vae, latents, args.chunk, layout)  # noqa: E731
        else:
            raise SystemExit(f"unknown variant {variant!r}: use {list(VARIANTS)}")
        frames_out = run()  # warm-up: cuDNN benchmark search, allocator
        if name.startswith("node"):
            outputs[variant] = torch.cat(frames_out).float()
        times = timed(torch, run, args.repeats)
        torch.backends.cudnn.benchmark = False
        seconds = statistics.median(times)
        rows[variant] = {"seconds": round(seconds, 4), "frames_per_s": round(frames / seconds, 1),
                         "tflops": round(flops / seconds / 1e12, 1), "all_seconds": [round(t, 4) for t in times]}  # fmt: skip
        if args.profile and torch.cuda.is_available():
            rows[variant]["profile"] = profiled(torch, run)
            print(f"{variant}: {json.dumps(rows[variant]['profile'])}")
        set_conv_layout(torch, vae.first_stage_model, torch.contiguous_format)

    if "node" in outputs and "node_unfused" in outputs:  # the fused passes change rounding only
        rows["node"]["max_abs_diff_vs_unfused"] = round(float((outputs["node"] - outputs["node_unfused"]).abs().max()), 5)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result = {
        "device": device, "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "vae": f"Wan 2.1 VAE, base dim {WAN_VAE_DIM if not args.tiny else tiny_models.TINY_VAE_BASE_DIM}",
        "dtype": str(vae.vae_dtype), "resolution": [args.width, args.height], "latent_frames": args.latent_frames,
        "frames": frames, "chunk": args.chunk, "decode_tflop": round(flops / 1e12, 2), "variants": rows,
    }  # fmt: skip
    print(f"{'variant':16s} {'seconds':>8s} {'frames/s':>9s} {'TFLOP/s':>8s}")
    for name, row in rows.items():
        print(f"{name:16s} {row['seconds']:8.3f} {row['frames_per_s']:9.1f} {row['tflops']:8.1f}")
    print(f"\n{device}, torch {torch.__version__}, {result['vae']}, {result['dtype']}, {args.width}x{args.height}, "
          f"{frames} frames, {result['decode_tflop']} TFLOP per video")  # fmt: skip
    tag = "tiny_cpu" if args.tiny else device.split()[1].lower() if " " in device else device
    out = Path(args.out) if args.out else REPO / "bench" / "results" / f"vae_decode_{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
