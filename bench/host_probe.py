"""Where the causal sampler's host time goes (issue 9): host and device cost per piece, and every sync.

The few-step causal sampler with Monarch attention is bound by the thread that launches kernels
(bench/notes_monarch_triton.md, session 5). This probe runs the same videos as ``bench/realtime.py``
(ComfyUI's WanModel at 1.3B size, 480 x 832, 81 frames in chunks of 3, 4 steps + the cache pass) and
times one level of the model per video, so that no measurement sits inside another:

* ``model_call``: one call of the diffusion model (all blocks, RoPE, embeddings, head);
* ``block``: one transformer block;
* ``attention``: the self-attention call (``optimized_attention`` as the KV-cache block calls it: the
  override dispatch, Monarch's wrapper, the kernels, the output reshape);
* ``kernels``: ``monarch_forward_into`` alone (scratch, tune-key lookups, the Triton launches);
* ``rope``: one q or k norm + RoPE (``norm_rope``: the fused pass on CUDA, ComfyUI's norm and
  ``apply_rope1`` where it does not apply).

Each timed piece starts on an idle GPU behind a ``torch.cuda._sleep`` long enough that the host
finishes launching before the GPU starts: ``host_us`` is the host's cost (Python, dispatch, launch
calls), ``device_us`` the GPU's (CUDA events). A video with ``torch.cuda.set_sync_debug_mode`` lists
the host-device syncs by their line. Prints tables and writes JSON.

    python bench/host_probe.py --comfy-dir /path/to/ComfyUI     # CUDA only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

SLEEP_CYCLES = {"model_call": 400_000_000, "block": 20_000_000, "attention": 4_000_000,
                "kernels": 4_000_000, "rope": 2_000_000}  # fmt: skip
"""GPU sleep before each timed piece (cycles, ~1.8 GHz): longer than the piece's host time."""


class Probe:
    """Wraps a callable: host time of each call, and its device time behind a GPU sleep."""

    def __init__(self, torch, name: str):
        self.torch, self.name = torch, name
        self.host_s: list[float] = []
        self.events: list = []

    def _start(self):
        """Idle GPU, then a sleep long enough for the host to launch the whole piece behind it."""
        torch = self.torch
        torch.cuda.synchronize()
        torch.cuda._sleep(SLEEP_CYCLES[self.name])
        start = torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        return t0, start

    def _stop(self, t0, start) -> None:
        end = self.torch.cuda.Event(enable_timing=True)
        end.record()
        self.host_s.append(time.perf_counter() - t0)
        self.events.append((start, end))

    def wrap(self, fn):
        def timed(*args, **kwargs):
            started = self._start()
            out = fn(*args, **kwargs)
            self._stop(*started)
            return out

        return timed

    def hooks(self, module) -> tuple:
        """The same timing around every call of ``module`` (whatever its forward is at call time)."""
        pending = []
        before = lambda _module, _args: pending.append(self._start())  # noqa: E731
        after = lambda _module, _args, _out: self._stop(*pending.pop())  # noqa: E731
        return module.register_forward_pre_hook(before), module.register_forward_hook(after)

    def summary(self) -> dict:
        self.torch.cuda.synchronize()
        device_ms = [s.elapsed_time(e) for s, e in self.events]
        return {
            "calls": len(self.host_s),
            "host_us": round(1e6 * statistics.median(self.host_s), 1),
            "device_us": round(1e3 * statistics.median(device_ms), 1),
            "host_s_total": round(sum(self.host_s), 4),
            "device_s_total": round(sum(device_ms) / 1e3, 4),
        }


def sync_sites(torch, sampler, run_video) -> list[dict]:
    """Every synchronising CUDA call of one video, counted by the innermost line outside torch."""
    sites: Counter = Counter()
    show = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        frames = [f for f in traceback.extract_stack()[:-1] if "/torch/" not in f.filename and "warnings" not in f.filename]
        where = frames[-3:] if frames else []
        sites[" <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(where))] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run_video(sampler)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            warnings.showwarning = show
    return [{"count": n, "site": s} for s, n in sites.most_common()]


def launch_costs(torch, repeats: int = 200) -> dict:
    """Host microseconds per launch of one q/k norm + RoPE at the chunk shape (1 x 4680 tokens x 1536),
    by each route, with the GPU kept busy so that no launch waits: ComfyUI's two modules, Triton's own
    launch of the fused kernel, the public entry point, and one torch elementwise op for scale.
    (Session 6 also timed a relaunch that skips Triton's argument binding: 31 us against Triton's
    29 us, so it was dropped: Triton 3.6's launch is not where the host time goes.)"""
    import comfy.rmsnorm
    from comfy.ldm.flux.math import apply_rope1

    from rtv.kernels.qk_norm_rope import qk_norm_rope
    from rtv.kernels.qk_norm_rope import triton_fused as fused

    tokens, c, heads = 4680, 1536, 12
    x = torch.randn(1, tokens, c, device="cuda", dtype=torch.bfloat16)
    w = torch.rand(c, device="cuda", dtype=torch.bfloat16) + 0.5
    freqs = torch.randn(1, tokens, 1, c // heads // 2, 2, 2, device="cuda")
    out = torch.empty_like(x)
    args = (x, w, freqs, out, tokens, x.stride(0), x.stride(1), 0, freqs.stride(1), out.stride(0), out.stride(1), 1e-6)
    meta = dict(CHANNELS=c, HALF_HEAD=c // heads // 2, BLOCK_P=1024, num_warps=4)
    routes = {
        "comfy_rms_norm+apply_rope1": lambda: apply_rope1(comfy.rmsnorm.rms_norm(x, w, 1e-6).view(1, tokens, heads, -1), freqs),
        "triton_jit_launch": lambda: fused._qk_norm_rope_kernel[(tokens,)](*args, **meta),
        "qk_norm_rope_api": lambda: qk_norm_rope(x, w, 1e-6, freqs, heads, out=out),
        "torch_add_one_op": lambda: torch.add(x, x, out=out),
    }
    result = {}
    for name, fn in routes.items():
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        torch.cuda._sleep(1_000_000_000)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        result[name] = round(1e6 * (time.perf_counter() - t0) / repeats, 1)
        torch.cuda.synchronize()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", default=str(REPO / ".host" / "ComfyUI"))
    ap.add_argument("--modes", default="dense,monarch_rt")
    ap.add_argument("--levels", default="launch,block,attention,kernels,rope",
                    help="launch (per-launch host cost by route), model_call (queue-limited: its ~1200 launches "
                    "overfill the launch queue behind the sleep), block, attention, kernels, rope")
    ap.add_argument("--graphs", action="store_true", help="the sampler's cuda_graphs on (block graphs, patches/block_graphs.py)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sys.path.insert(0, args.comfy_dir)
    sys.path.insert(0, str(REPO / "tools"))
    import comfy.cli_args
    import torch

    if not torch.cuda.is_available():
        print("the host probe needs a CUDA GPU")
        return 2
    comfy.cli_args.args.cpu = False
    from pack_import import load_pack

    load_pack("rtv")
    import realtime

    import rtv.kernels.monarch.triton_monarch as triton_monarch
    import rtv.patches.kv_cache as kv_cache
    import rtv.patches.self_attention as self_attention
    from rtv.patches.attention import MonarchSettings, apply_monarch_attention
    from rtv.sampling.causal import CausalStreamingSampler
    from rtv.sampling.causal_schedule import causal_sigmas, plan_causal_chunks

    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda_graphs": args.graphs,
              "modes": {}}  # fmt: skip
    if "launch" in args.levels.split(","):
        report["launch_host_us"] = launch_costs(torch)
        print("host us per launch:", report["launch_host_us"], flush=True)
    args.tiny = False
    base, vae = realtime.build(args, torch, torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, realtime.TEXT_TOKENS, realtime.TEXT_DIM, generator=g), {}]]
    plan = plan_causal_chunks(81, 3, seed=0)
    sigmas = causal_sigmas("1000,750,500,250", 5.0)
    dm = base.get_model_object("diffusion_model")

    def run_video(sampler):
        t0 = time.perf_counter()
        sampler.run()
        return time.perf_counter() - t0

    for mode in args.modes.split(","):
        settings = realtime.MODES[mode]
        model = base if settings is None else apply_monarch_attention(base, MonarchSettings(**settings))
        sampler = CausalStreamingSampler(
            model, positive, vae, plan, sigmas, 832, 480, overlap_decode=True, cuda_graphs=args.graphs
        )
        run_video(sampler)  # warm-up: loads, autotunes
        row = {"video_s_unprobed": round(run_video(sampler), 4)}
        for level in args.levels.split(","):
            if level == "launch" or (level == "kernels" and mode == "dense"):
                continue
            probe = Probe(torch, level)
            undo = []
            if level == "model_call":
                dm.forward = probe.wrap(type(dm).forward.__get__(dm))
                undo.append(lambda: delattr(dm, "forward"))
            elif level == "block":  # hooks: the sampler's object patch of block.forward is re-set every run
                for b in dm.blocks:
                    undo.extend(h.remove for h in probe.hooks(b))
            elif level == "attention":  # the self-attention call (marked, cached keys)
                original = self_attention.optimized_attention
                self_attention.optimized_attention = probe.wrap(original)
                undo.append(lambda o=original: setattr(self_attention, "optimized_attention", o))
            elif level == "kernels":
                original = triton_monarch.monarch_forward_into
                triton_monarch.monarch_forward_into = probe.wrap(original)
                undo.append(lambda o=original: setattr(triton_monarch, "monarch_forward_into", o))
            elif level == "rope":
                original = kv_cache.norm_rope
                kv_cache.norm_rope = probe.wrap(original)
                undo.append(lambda o=original: setattr(kv_cache, "norm_rope", o))
            try:
                run_video(sampler)
            finally:
                for fn in undo:
                    fn()
            row[level] = probe.summary()
            print(f"{mode:<11} {level:<11} {row[level]}", flush=True)
        row["syncs"] = sync_sites(torch, sampler, run_video)
        report["modes"][mode] = row

    print(f"\n{'mode':<11} {'level':<11} {'calls':>6} {'host us':>9} {'device us':>10} {'host s':>8} {'device s':>9}")
    for mode, row in report["modes"].items():
        for level, r in row.items():
            if isinstance(r, dict) and "host_us" in r:
                print(f"{mode:<11} {level:<11} {r['calls']:>6} {r['host_us']:>9} {r['device_us']:>10} "
                      f"{r['host_s_total']:>8} {r['device_s_total']:>9}")  # fmt: skip
        print(f"{mode}: {sum(s['count'] for s in row['syncs'])} syncs a video; top sites:")
        for s in row["syncs"][:12]:
            print(f"   {s['count']:>4}  {s['site'][:150]}")
    out = Path(args.out or REPO / "bench" / "results" / "host_probe_h100.json")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
