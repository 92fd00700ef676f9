"""Where one Monarch call spends its GPU time: every kernel launch, labelled by its step.

A call runs, per chunk of query tiles, ``[local], stage 1 (iteration 1), refine, stage 1 (iteration
2), ..., stage 2``; with several iterations the two stage 1s share a kernel name, so the profiler's
per-name totals cannot tell them apart. This labels the launches in order and prints, per step, the
milliseconds and the DRAM bytes its intermediates nominally move (aL, Y, aR written or read; cL and
the inputs are small), with the bandwidth that implies, beside the whole call's time (``do_bench``, as
bench/attention.py times it) and the host time one call takes to submit its launches: a call whose host time
exceeds its kernels' is timed by the CPU, not the GPU. ``--candidates refine,stage2`` also times the
refine step of iterations 2 and the stage 2 of iterations 1 with each of their candidates forced in
turn (the stored choices for the other steps, no re-tuning). Writes JSON.

    python bench/monarch_breakdown.py --shapes full_480p,full_720p --settings plain,iterations2 --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import DTYPE, HEAD_DIM, SHAPES, timed, versions  # noqa: E402

from rtv.kernels.monarch import gluon_refine, monarch_attention  # noqa: E402
from rtv.kernels.monarch import triton_monarch as tm  # noqa: E402
from rtv.kernels.monarch.reference import monarch_layout  # noqa: E402

SETTINGS = {"plain": {}, "node_default": {"exact_local": 1}, "iterations2": {"iterations": 2}}

SCRATCH_UNITS = {"stage1_first": 1, "stage1_later": 2, "stage1_final_first": 2, "stage1_final_later": 3, "refine": 3,
                 "stage2": 2}
"""Nominal DRAM traffic of a step in units of aL's size: stage 1 writes aL (and Y when final; a later
iteration also reads aR), refine reads aL twice and writes aR, stage 2 reads aL and Y."""


def step_names(iterations: int) -> list[str]:
    """The Monarch launches of one chunk, in order (the exact local step comes before them)."""
    names = []
    for iteration in range(iterations):
        final = iteration == iterations - 1
        role = ("stage1_final" if final else "stage1") + ("_first" if iteration == 0 else "_later")
        names += [role, "stage2" if final else "refine"]
    return names


def launches(fn) -> list[tuple[str, float, float]]:
    """(kernel name, microseconds, start in microseconds) of every kernel one call launches, in start order."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    kernels = [
        e for e in prof.events()
        if e.device_type == DeviceType.CUDA and not e.name.startswith(("Memset", "Memcpy", "[memory]"))
    ]  # fmt: skip
    kernels.sort(key=lambda e: e.time_range.start)
    return [(e.name, e.time_range.elapsed_us(), e.time_range.start) for e in kernels]


def is_monarch_step(kernel: str) -> bool:
    """Stage 1, refine or stage 2 (Triton or Gluon); anything else belongs to the exact local step."""
    return any(step in kernel for step in ("stage1_kernel", "stage2_kernel", "refine_kernel"))


HOST_CALLS = 20
"""Calls submitted back to back, without waiting for the GPU, to time the host's share of one call."""


def host_ms(fn) -> float:
    """Milliseconds the host needs to submit one call (median of three rounds of ``HOST_CALLS``)."""
    rounds = []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(HOST_CALLS):
            fn()
        rounds.append((time.perf_counter() - start) * 1000 / HOST_CALLS)
        torch.cuda.synchronize()
    return sorted(rounds)[1]


def breakdown(shape_key: str, setting: str, with_call_times: bool = True) -> dict:
    shape = SHAPES[shape_key]
    settings = SETTINGS[setting]
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(1, shape.heads, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
        for n in (shape.query_tokens, shape.key_tokens, shape.key_tokens)
    )

    def call():
        return monarch_attention(q, k, v, shape.grid, backend="triton", **settings)

    call()  # tuning and compilation stay out of the profile
    call()
    torch.cuda.synchronize()
    events = launches(call)
    names = step_names(settings.get("iterations", 1))
    monarch_steps = [kernel for kernel, _, _ in events if is_monarch_step(kernel)]
    if len(monarch_steps) % len(names):
        raise RuntimeError(f"{len(monarch_steps)} launches do not split into chunks of {names}: {events}")
    layout = monarch_layout(shape.grid, shape.query_tokens, shape.key_tokens)
    unit = shape.heads * layout.query_tiles * layout.b2 * layout.key_tiles * layout.b1 * HEAD_DIM * 2
    steps: dict[str, dict] = {}
    index = 0
    for kernel, us, _ in events:
        # the exact local tiles are one Triton kernel, or cuDNN with its gathers and casts: all one step
        monarch_step = is_monarch_step(kernel)
        name = names[index % len(names)] if monarch_step else "local"
        index += monarch_step
        entry = steps.setdefault(name, {"kernel": kernel, "ms": 0.0, "launches": 0})
        entry["ms"] += us / 1000
        entry["launches"] += 1
    for name, entry in steps.items():
        units = SCRATCH_UNITS.get(name)
        if units:
            entry["nominal_gb"] = units * unit / 1e9
            entry["nominal_tb_per_s"] = entry["nominal_gb"] / entry["ms"]
    total = sum(e["ms"] for e in steps.values())
    # first start to last end of the profiled call: what exceeds the kernels' sum is the GPU idle between them
    span = (events[-1][2] + events[-1][1] - events[0][2]) / 1000 if events else 0.0
    run = {"shape": shape_key, "setting": setting, "settings": settings, "chunks": len(monarch_steps) // len(names),
           "al_gb": unit / 1e9, "kernels_ms": total, "span_ms": span, "steps": steps}  # fmt: skip
    if with_call_times:
        run["call_ms"] = timed(call)
        run["host_ms"] = host_ms(call)
    return run


STEP_OFFERS = {
    "refine": ("REFINE_CANDIDATES", gluon_refine, "iterations2"),
    "stage2": ("STAGE2_CANDIDATES", None, "plain"),
}
"""step -> (triton_monarch's list of Triton candidates, the Gluon module with its own or None, the setting
timed)."""


def step_candidates(step: str, shape_key: str) -> dict[str, float]:
    """Milliseconds of one step with each of its candidates alone, in one process (the stored choices
    for the other steps; nothing re-tuned or stored)."""
    triton_list, gluon_module, setting = STEP_OFFERS[step]
    gluon = gluon_module is not None and gluon_module.HAS_GLUON and torch.cuda.get_device_capability() == (9, 0)
    offered = list(getattr(tm, triton_list)) + (list(gluon_module.CANDIDATES) if gluon else [])
    saved_triton, autotune = getattr(tm, triton_list), os.environ.get("RTV_MONARCH_AUTOTUNE")
    saved_gluon = gluon_module.CANDIDATES if gluon_module is not None else None
    os.environ["RTV_MONARCH_AUTOTUNE"] = "0"
    times = {}
    try:
        for config in offered:
            setattr(tm, triton_list, [] if "impl" in config else [config])
            if gluon_module is not None:
                gluon_module.CANDIDATES = [config] if "impl" in config else []
            tm._chosen = {key: c for key, c in tm._chosen.items() if f"|{step}|" not in key}
            name = json.dumps(config, sort_keys=True)
            try:
                times[name] = breakdown(shape_key, setting, with_call_times=False)["steps"][step]["ms"]
            except Exception as error:  # noqa: BLE001 - one failing candidate must not lose the others' times
                print(f"  {step} {name}: failed: {error}", flush=True)
                continue
            print(f"  {step} {name}: {times[name]:.3f} ms", flush=True)
    finally:
        setattr(tm, triton_list, saved_triton)
        if gluon_module is not None:
            gluon_module.CANDIDATES = saved_gluon
        if autotune is None:
            os.environ.pop("RTV_MONARCH_AUTOTUNE")
        else:
            os.environ["RTV_MONARCH_AUTOTUNE"] = autotune
        tm._chosen = {key: c for key, c in tm._chosen.items() if f"|{step}|" not in key}
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="full_480p,full_720p", help=f"comma-separated subset of {list(SHAPES)}")
    parser.add_argument("--settings", default="plain,iterations2", help=f"comma-separated subset of {list(SETTINGS)}")
    parser.add_argument("--out", type=Path, required=True, help="JSON path")
    parser.add_argument("--candidates", default="", help="comma-separated steps (refine, stage2) whose every "
                        "candidate is also timed alone")
    args = parser.parse_args()
    unknown = set(filter(None, args.candidates.split(","))) - set(STEP_OFFERS)
    if unknown:
        parser.error(f"--candidates takes steps of {list(STEP_OFFERS)}, not {sorted(unknown)}")
    if not torch.cuda.is_available():
        raise SystemExit("bench/monarch_breakdown.py needs a CUDA GPU")
    result = {"versions": versions(), "dtype": str(DTYPE), "head_dim": HEAD_DIM, "runs": []}
    for shape_key in args.shapes.split(","):
        for setting in args.settings.split(","):
            run = breakdown(shape_key, setting)
            result["runs"].append(run)
            print(f"\n{shape_key} {setting}: {run['kernels_ms']:.3f} ms in kernels ({run['span_ms']:.3f} ms from the "
                  f"first start to the last end), call {run['call_ms']:.3f} ms, "
                  f"host {run['host_ms']:.3f} ms per call, {run['chunks']} launch group(s), aL = {run['al_gb']:.2f} GB")
            print(f"  {'step':20s} {'kernel':28s} {'ms':>9s} {'nominal GB':>11s} {'TB/s':>6s}")
            for name, e in run["steps"].items():
                gb = f"{e['nominal_gb']:11.2f} {e['nominal_tb_per_s']:6.2f}" if "nominal_gb" in e else ""
                print(f"  {name:20s} {e['kernel'][:28]:28s} {e['ms']:9.3f} {gb}")
            torch.cuda.empty_cache()
        for step in filter(None, args.candidates.split(",")):
            print(f"\n{shape_key}: {step} candidates, {STEP_OFFERS[step][2]}")
            result.setdefault(f"{step}_candidates_ms", {})[shape_key] = step_candidates(step, shape_key)
            torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
