"""Which CUDA graph captures survive under an allocator, one case per fresh process.

ComfyUI runs PyTorch with ``backend:cudaMallocAsync`` unless told ``--disable-cuda-malloc``. Session 9
saw a failed capture of the Wan forward there abort the whole process at a later free
(``realtime_h100_graphs_cudamallocasync.log``). This asks, with a small Triton kernel and no ComfyUI:

- ``triton``: a Triton kernel on a tensor made inside the capture, as our model calls do;
- ``triton_by_address``: the same inside ``patches.graph_capture.triton_launches_by_address``;
- ``python_error``: an exception raised inside a capture after allocating (a capture our code gives up);
- ``sync_error``: a host sync inside a capture (the driver invalidates it);
- ``*_settled``: the same failures handled as the pack does (``capture_guards`` around the capture, then
  ``settle_failed_capture``);
- each failing case is followed by ordinary work, a free of everything and ``torch.cuda.synchronize``.

Prints a table (exit code, result) and writes JSON. ``python bench/graph_capture_probe.py --allocator
cudaMallocAsync`` (or ``native``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = (
    "triton", "triton_by_address", "python_error", "sync_error",
    "python_error_settled", "sync_error_guarded_settled", "python_error_side_stream_settled", "triton_settled",
)  # fmt: skip


def _case(name: str) -> dict:
    import torch
    import triton
    import triton.language as tl

    sys.path.insert(0, str(REPO))
    from patches.graph_capture import capture_guards, settle_failed_capture, triton_launches_by_address

    @triton.jit
    def scale_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        tl.store(y_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) * 2.0 + 1.0, mask=mask)

    def step(x):
        h = torch.sin(x) + 0.5  # made inside the capture
        y = torch.empty_like(h)
        scale_kernel[(triton.cdiv(h.numel(), 1024),)](h, y, h.numel(), BLOCK=1024)
        return y * 3

    static = torch.randn(1 << 20, device="cuda")
    expected = step(static)  # eager: compiles the kernel
    torch.cuda.synchronize()
    result = {"allocator": torch.cuda.get_allocator_backend(), "case": name}
    graph = torch.cuda.CUDAGraph()
    kept = []
    settled = name.endswith("_settled")
    base = name.removesuffix("_settled")
    try:
        if base in ("triton", "triton_by_address"):
            context = triton_launches_by_address() if base == "triton_by_address" else _nothing()
            with context, torch.cuda.graph(graph):
                out = step(static)
            graph.replay()
            torch.cuda.synchronize()
            result["max_abs_diff"] = (out - expected).abs().max().item()
            static.copy_(torch.randn_like(static))
            graph.replay()
            result["max_abs_diff_new_input"] = (out - step(static)).abs().max().item()
        elif base == "python_error":
            with torch.cuda.graph(graph):
                kept.append(torch.sin(static))
                raise RuntimeError("given up inside the capture")
        elif base == "python_error_side_stream":  # BlockGraphs' way: capture_begin on a side stream
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                graph.capture_begin(capture_error_mode="thread_local")
                try:
                    kept.append(torch.sin(static))
                    raise RuntimeError("given up inside the capture")
                except RuntimeError:
                    graph.capture_end()
                    raise
        elif base in ("sync_error", "sync_error_guarded"):
            with torch.cuda.graph(graph), (capture_guards() if base == "sync_error_guarded" else _nothing()):
                kept.append(torch.sin(static))
                kept.append(kept[-1].sum().item())
    except Exception as error:  # noqa: BLE001 - the case's failure is what we report
        result["error"] = f"{type(error).__name__}: {error}"[:300]
        if settled:
            settle_failed_capture(graph, error, list(kept))
    # what follows a capture our code gave up: eager work, then everything from the capture freed
    after = step(static)
    torch.cuda.synchronize()
    result["eager_after_ok"] = bool(torch.isfinite(after).all().item())
    kept.clear()
    del graph
    import gc

    gc.collect()
    torch.cuda.synchronize()
    result["freed_ok"] = True
    return result


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allocator", default="cudaMallocAsync", choices=("cudaMallocAsync", "native"))
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.case:
        print("RESULT " + json.dumps(_case(args.case)), flush=True)
        return
    env = {**os.environ, "PYTORCH_CUDA_ALLOC_CONF": f"backend:{args.allocator}"}
    rows = []
    for case in CASES:
        done = subprocess.run([sys.executable, __file__, "--case", case], env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        row = json.loads(lines[-1][len("RESULT "):]) if lines else {"case": case}
        row["returncode"] = done.returncode
        if done.returncode or not lines:
            row["stderr_tail"] = done.stderr[-1500:]
        rows.append(row)
        print(f"{case:28s} rc={done.returncode:4d}  {json.dumps({k: v for k, v in row.items() if k not in ('case', 'stderr_tail')})}",
              flush=True)  # fmt: skip
    import torch

    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "allocator": args.allocator,
           "rows": rows}  # fmt: skip
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:
        pass
    path = Path(args.out or REPO / "bench" / "results" / f"graph_capture_probe_{args.allocator}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
