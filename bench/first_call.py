"""What a user waits for on the first Monarch call of a new shape: compiling and tuning, from nothing.

Each case runs in a fresh Python process with an empty Triton cache (``TRITON_CACHE_DIR``), an
empty tuning cache (``RTV_CACHE_DIR``) and the pack's shipped choices off, as on a fresh install on a
GPU model they were not measured on: its first call compiles every candidate kernel and times them,
the second call finds the choices and only launches. A case that outlives ``--timeout`` is recorded
as such. Prints a table; writes JSON (device, versions, seconds).

    python bench/first_call.py --out bench/results/monarch_first_call_tuning_<gpu>.json
    python bench/first_call.py --cases full_480p:plain --out /tmp/first.json
    python bench/first_call.py --split ...   # where the time goes: the tuner's timing runs or compiling
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CASES = "full_480p:plain,full_480p:node_default,full_720p:plain,full_720p:node_default"

_CHILD = r"""
import json, logging, sys, time
import torch
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
sys.path.insert(0, sys.argv[1])
from attention import DTYPE, HEAD_DIM, SHAPES
from rtv.kernels.monarch import monarch_attention
shape, settings = SHAPES[sys.argv[2]], json.loads(sys.argv[3])
gen = torch.Generator(device="cuda").manual_seed(0)
q, k, v = (torch.randn(1, shape.heads, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
           for n in (shape.query_tokens, shape.key_tokens, shape.key_tokens))
seconds = []
for _ in range(2):
    torch.cuda.synchronize()
    start = time.perf_counter()
    monarch_attention(q, k, v, shape.grid, backend="triton", **settings)
    torch.cuda.synchronize()
    seconds.append(time.perf_counter() - start)
print(json.dumps({"first_call_s": seconds[0], "second_call_s": seconds[1]}))
"""


def run_case(shape: str, settings: dict, timeout: float, triton_cache: str, tune_cache: str,
             shipped: bool = False) -> dict:  # fmt: skip
    """One case (``settings`` for ``monarch_attention``) in a fresh process with the given caches, and
    without the pack's shipped choices unless ``shipped``."""
    bench_dir = Path(__file__).resolve().parent
    env = {**os.environ, "TRITON_CACHE_DIR": triton_cache, "RTV_CACHE_DIR": tune_cache,
           "RTV_MONARCH_SHIPPED_CHOICES": "1" if shipped else "0"}  # fmt: skip
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(bench_dir), shape, json.dumps(settings)],
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"timed_out_after_s": timeout}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:], "returncode": done.returncode}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start  # with torch's import and CUDA's start
    result["compile_log"] = [line for line in done.stderr.splitlines() if "Monarch: compiled" in line]
    return result


def run_split(shape: str, settings: dict, timeout: float) -> dict:
    """From nothing; then with the kernels compiled but no stored choices (the tuner's timing runs);
    then with the choices but nothing compiled (compiling the chosen kernels only); then from nothing
    but the pack's shipped choices (a fresh install on a GPU model they were measured on)."""
    with (tempfile.TemporaryDirectory() as triton_cache, tempfile.TemporaryDirectory() as tune_cache,
          tempfile.TemporaryDirectory() as empty_triton, tempfile.TemporaryDirectory() as empty_tune,
          tempfile.TemporaryDirectory() as fresh_triton, tempfile.TemporaryDirectory() as fresh_tune):  # fmt: skip
        return {
            "from_nothing": run_case(shape, settings, timeout, triton_cache, tune_cache),
            "compiled_untuned": run_case(shape, settings, timeout, triton_cache, empty_tune),
            "tuned_uncompiled": run_case(shape, settings, timeout, empty_triton, tune_cache),
            "shipped_choices": run_case(shape, settings, timeout, fresh_triton, fresh_tune, shipped=True),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=DEFAULT_CASES, help="shape:setting pairs, comma separated")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per case")
    parser.add_argument("--split", action="store_true",
                        help="also time each case with compiled kernels and no choices, and the reverse")  # fmt: skip
    parser.add_argument("--compile-threads", type=int, default=None,
                        help="RTV_MONARCH_COMPILE_THREADS for the children (default: the pack's)")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.compile_threads is not None:
        os.environ["RTV_MONARCH_COMPILE_THREADS"] = str(args.compile_threads)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from attention import versions  # noqa: PLC0415 - loads the pack; the children import it again
    from monarch_ab import SETTINGS  # noqa: PLC0415 - the settings every Monarch benchmark names

    threads = os.environ.get("RTV_MONARCH_COMPILE_THREADS")
    result = {"versions": versions(), "compile_threads": threads, "cases": {}}
    print(f"{'shape':11s} {'setting':13s} {'first call s':>13s} {'second call s':>14s}", flush=True)
    for case in args.cases.split(","):
        shape, setting = case.split(":")
        if args.split:
            parts = run_split(shape, SETTINGS[setting], args.timeout)
            entry = parts["from_nothing"]
            for name in ("compiled_untuned", "tuned_uncompiled", "shipped_choices"):
                entry[f"{name}_first_call_s"] = parts[name].get("first_call_s")
                print(f"  {name}: {parts[name]}", flush=True)
        else:
            with tempfile.TemporaryDirectory() as triton_cache, tempfile.TemporaryDirectory() as tune_cache:
                entry = run_case(shape, SETTINGS[setting], args.timeout, triton_cache, tune_cache)
        result["cases"][case] = entry
        first = entry.get("first_call_s")
        second = entry.get("second_call_s")
        shown = (f"{first:13.1f} {second:14.4f}" if first is not None
                 else f"{'timed out' if 'timed_out_after_s' in entry else 'failed':>13s}")  # fmt: skip
        print(f"{shape:11s} {setting:13s} {shown}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))  # after every case: a later timeout loses nothing
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
