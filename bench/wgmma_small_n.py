"""How fast Hopper's tensor cores run products with a small N (the pairs of a fused Monarch kernel).

The fused kernel priced in ``bench/notes_monarch_triton.md`` would run its products with N = the 8-32
pairs a CTA holds, M = 64 rows and K = 64 or 128. This times chains of ``warpgroup_mma`` (Gluon) of
one such shape: every CTA keeps one A (64 x K) and one B (K x N) tile in shared memory (or A in
registers) and issues ``ITERS`` products into one accumulator, asynchronously, waiting once. Prints
TFLOP/s per N and operand placement; writes JSON. Compare with the dense peak (~990 TFLOP/s bf16).

    python bench/wgmma_small_n.py --out bench/results/wgmma_small_n_h100.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from pack_import import load_pack  # noqa: E402

load_pack("rtv")
from rtv.kernels.monarch.gluon_hopper import (  # noqa: E402
    HAS_GLUON,
    fence_async_shared,
    gl,
    gluon,
    warpgroup_mma,
)

if HAS_GLUON:
    from triton.experimental.gluon.language.nvidia.hopper import warpgroup_mma_init, warpgroup_mma_wait

    @gluon.jit
    def mma_chain(A, B, Out, ITERS: gl.constexpr, N: gl.constexpr, K: gl.constexpr, A_IN_REGISTERS: gl.constexpr):
        smem: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=2)
        rows_layout: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
        cols = gl.arange(0, K, layout=gl.SliceLayout(0, rows_layout))
        a_rows = gl.arange(0, 64, layout=gl.SliceLayout(1, rows_layout))
        b_rows = gl.arange(0, N, layout=gl.SliceLayout(1, rows_layout))
        a_smem = gl.allocate_shared_memory(gl.float16, [64, K], smem, gl.load(A + a_rows[:, None] * K + cols[None, :]))
        b_smem = gl.allocate_shared_memory(gl.float16, [N, K], smem, gl.load(B + b_rows[:, None] * K + cols[None, :]))
        fence_async_shared()
        mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1], instr_shape=[16, N, 16])
        acc = warpgroup_mma_init(gl.zeros([64, N], gl.float32, mma))  # an async accumulator from the start
        if A_IN_REGISTERS:
            a = a_smem.load(gl.DotOperandLayout(operand_index=0, parent=mma, k_width=2))
            for _ in range(ITERS):
                acc = warpgroup_mma(a, b_smem.permute((1, 0)), acc, is_async=True)
        else:
            for _ in range(ITERS):
                acc = warpgroup_mma(a_smem, b_smem.permute((1, 0)), acc, is_async=True)
        acc = warpgroup_mma_wait(0, deps=[acc])
        out_rows = gl.arange(0, 64, layout=gl.SliceLayout(1, mma))
        out_cols = gl.arange(0, N, layout=gl.SliceLayout(0, mma))
        base = Out + gl.program_id(0) * 64 * N
        gl.store(base + out_rows[:, None] * N + out_cols[None, :], acc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="8,16,32,64,128,256")
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--iters", type=int, default=512)
    parser.add_argument("--ctas-per-sm", type=int, default=4)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import triton.testing

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    ctas = sms * args.ctas_per_sm
    a = torch.randn(64, args.k, device="cuda", dtype=torch.float16) / 8
    rows = []
    print(f"{'N':>4s} {'A in':>10s} {'ms':>8s} {'TFLOP/s':>8s}  (M 64, K {args.k}, {args.iters} products, {ctas} CTAs)")
    for n in (int(x) for x in args.ns.split(",")):
        b = torch.randn(n, args.k, device="cuda", dtype=torch.float16) / 8
        out = torch.empty(ctas, 64, n, device="cuda", dtype=torch.float32)
        for registers in (False, True):
            launch = functools.partial(mma_chain[(ctas,)], a, b, out, ITERS=args.iters, N=n, K=args.k,
                                       A_IN_REGISTERS=registers, num_warps=4)  # fmt: skip
            launch()
            expected = (a.float() @ b.float().T) * args.iters
            error = ((out[0] - expected).norm() / expected.norm()).item()
            ms = triton.testing.do_bench(launch, warmup=25, rep=200, return_mode="median")
            tflops = 2 * 64 * n * args.k * args.iters * ctas / ms / 1e9
            rows.append({"n": n, "a_in_registers": registers, "ms": ms, "tflops": tflops, "rel_error": error})
            where = "registers" if registers else "shared"
            print(f"{n:4d} {where:>10s} {ms:8.3f} {tflops:8.1f}  rel err {error:.1e}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                    "m": 64, "k": args.k, "iters": args.iters, "ctas": ctas, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
