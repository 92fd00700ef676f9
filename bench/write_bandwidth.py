"""The DRAM write floor of Monarch's stage 1: how fast this GPU writes the scratch pattern stage 1 writes.

Stage 1 writes aL and Y as boxes of 64 (query tile, column) pairs x one key row (256 bytes of float16 at head
dim 128), and the pairs of a box lie ``key_rows * 256`` bytes apart (stage 2 wants each pair's key rows
contiguous). This times, on one 8 GiB buffer: a contiguous fill (the write ceiling), a copy (read + write), and
boxes of 64 pairs x ``c`` consecutive key rows written with plain stores (Triton) and as TMA stores (Gluon, the
Gluon stage 1's way), over every pair block or from one program per SM, with 1-8 TMA stores in flight. Prints a
table and writes JSON; a stage-1 time is then read against the bytes it writes at these rates.

    python bench/write_bandwidth.py --out bench/results/write_bandwidth_h100.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention import timed, versions  # noqa: E402

from rtv.kernels.monarch.gluon_hopper import HAS_GLUON, fence_async_shared, gl, gluon, is_hopper, tma  # noqa: E402

BUFFER_BYTES = 8 << 30
KEY_ROWS = 960
"""Row pitch of the pattern (720p's stage 1 has 945 key rows); boxes take 1 of every 16 rows."""


@triton.jit
def plain_boxes(X, pair_blocks, row_stride, C: tl.constexpr, GAP: tl.constexpr):
    """One program per (pair block, chunk of C key rows), pair blocks fastest, as stage 1's CTAs run."""
    pid = tl.program_id(0)
    pairs = (pid % pair_blocks) * 64 + tl.arange(0, 64)
    cols = (pid // pair_blocks) * GAP * 128 + tl.arange(0, C * 128)
    tl.store(X + pairs.to(tl.int64)[:, None] * row_stride + cols[None, :], tl.full([64, C * 128], 1.0, tl.float16))


if HAS_GLUON:

    @gluon.jit
    def tma_boxes(desc, chunks, pair_blocks, C: gl.constexpr, GAP: gl.constexpr, IN_FLIGHT: gl.constexpr):
        """Each program stores one shared [64, 128] tile as TMA boxes over its pair blocks, IN_FLIGHT at a time."""
        layout: gl.constexpr = gl.NVMMASharedLayout(swizzle_byte_width=128, element_bitwidth=16, rank=3)
        smem = gl.allocate_shared_memory(gl.float16, [1, 64, 128], layout)
        blocked: gl.constexpr = gl.BlockedLayout([1, 8], [4, 8], [4, 1], [1, 0])
        smem.reshape([64, 128]).store(gl.full([64, 128], 1.0, gl.float16, blocked))
        fence_async_shared()
        for pb in range(gl.program_id(0), pair_blocks, gl.num_programs(0)):
            for chunk in range(chunks):
                for r in gl.static_range(C):
                    tma.store_wait(IN_FLIGHT - 1)
                    tma.async_copy_shared_to_global(desc, [0, pb * 64, (chunk * GAP + r) * 128], smem)
        tma.store_wait(0)


def terabytes_per_s(fn, nbytes: int) -> float:
    return nbytes / timed(fn) / 1e9


def measure() -> dict:
    x = torch.empty(BUFFER_BYTES // 2, dtype=torch.float16, device="cuda")
    source = torch.empty(x.numel() // 4, dtype=torch.float16, device="cuda").normal_()
    target = x[: source.numel()]
    rates = {
        "fill contiguous": terabytes_per_s(lambda: x.fill_(1.0), x.numel() * 2),
        "copy contiguous (read + write)": terabytes_per_s(lambda: target.copy_(source), 4 * source.numel()),
    }
    pairs = x.numel() // (KEY_ROWS * 128) // 64 * 64
    blocks = pairs // 64
    for c in (1, 2, 4, 8):
        chunks = KEY_ROWS // (16 * c)
        grid = (blocks * chunks,)
        rates[f"plain stores, 64 x {256 * c} B boxes"] = terabytes_per_s(
            lambda c=c, grid=grid: plain_boxes[grid](x, blocks, KEY_ROWS * 128, C=c, GAP=16 * c),
            pairs * chunks * c * 256)  # fmt: skip
    if HAS_GLUON and is_hopper(x.device.index or 0):
        from rtv.kernels.monarch.gluon_stage1 import _scratch_descriptor

        desc = _scratch_descriptor(x[: pairs * KEY_ROWS * 128].view(1, 1, pairs, KEY_ROWS, 128))
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        for programs, name in ((blocks, "one program per pair block"), (sms, "one program per SM")):
            for c in (1, 4):
                chunks = KEY_ROWS // (16 * c)
                for in_flight in (1, 2, 4, 8):
                    rates[f"TMA stores, 64 x {256 * c} B boxes, {name}, {in_flight} in flight"] = terabytes_per_s(
                        lambda p=programs, c=c, n=chunks, f=in_flight: tma_boxes[(p,)](
                            desc, n, blocks, C=c, GAP=16 * c, IN_FLIGHT=f, num_warps=4),
                        pairs * chunks * c * 256)  # fmt: skip
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON path")
    args = parser.parse_args()
    rates = measure()
    width = max(len(name) for name in rates)
    print(f"{'pattern':<{width}}  TB/s")
    for name, rate in rates.items():
        print(f"{name:<{width}}  {rate:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"versions": versions(), "buffer_bytes": BUFFER_BYTES, "key_rows": KEY_ROWS,
                                    "terabytes_per_s": rates}, indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
