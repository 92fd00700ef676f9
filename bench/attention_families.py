"""Monarch attention on HunyuanVideo, LTX-Video and Wan 2.2 5B shapes against cuDNN SDPA, side by side in one process.

HunyuanVideo's blocks run *joint* attention over its video tokens and 256 text tokens. The Monarch node
gives the video queries Monarch attention over the video grid with the text keys exact, and the text
queries dense attention over everything (``patches/attention.py``). This script times that same
computation through the kernel API against cuDNN's attention over the whole joint sequence. LTX-Video
self-attention is video tokens only. bf16, head dim 128, random inputs (speed does not depend on
values; accuracy is measured in tests/unit and bench/monarch_quality.py).

    python bench/attention_families.py --out bench/results/attention_families_h100.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))
from pack_import import load_pack  # noqa: E402

load_pack("rtv")
from attention import timed, versions  # noqa: E402

from rtv.kernels.monarch import monarch_attention  # noqa: E402
from rtv.kernels.monarch.extra_keys import attention_with_biased_extras  # noqa: E402

HEAD_DIM = 128
DTYPE = torch.bfloat16


@dataclass(frozen=True)
class FamilyShape:
    name: str
    heads: int
    grid: tuple[int, int, int]
    text_tokens: int  # joint attention's extra tokens after the video (0: plain self-attention)
    extra_bias: float = 0.0  # on the extra tokens' logits (anchor memory's context frame: log strength)

    @property
    def video_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def tokens(self) -> int:
        return self.video_tokens + self.text_tokens


SHAPES = {
    # 1280 x 720, 129 frames: latent 33 x 90 x 160, patch 1 x 2 x 2; 24 heads of 128; LLaVA text padded to 256
    "hunyuan_720p": FamilyShape("HunyuanVideo 720p 129 frames (joint, 256 text)", 24, (33, 45, 80), 256),
    # 960 x 544, 129 frames
    "hunyuan_544p": FamilyShape("HunyuanVideo 544p 129 frames (joint, 256 text)", 24, (33, 34, 60), 256),
    # LTX-Video 13B (32 heads of 128) at 1216 x 704, 257 frames: latent 33 x 22 x 38, patch 1
    "ltxv13b_704p": FamilyShape("LTX-Video 13B 704p 257 frames", 32, (33, 22, 38), 0),
    # Wan 2.2 TI2V 5B (24 heads) at 1280 x 704, 121 frames: latent 31 x 44 x 80 (16x VAE), patch 1 x 2 x 2
    "wan22_5b_704p": FamilyShape("Wan 2.2 TI2V 5B 704p 121 frames", 24, (31, 22, 40), 0),
    # HunyuanVideo 1.5 (16 heads) at 1280 x 720, 121 frames: latent 31 x 45 x 80 (16x VAE), patch 1; 256 text
    "hunyuan15_720p": FamilyShape("HunyuanVideo 1.5 720p 121 frames (joint, 256 text)", 16, (31, 45, 80), 256),
    # Wan 1.3B 480p with anchor memory's context frame (one more latent frame, 1560 tokens) at strength 0.4:
    # the node attends it exactly with bias log 0.4; stock ComfyUI runs masked SDPA over all 22 frames
    "wan_480p_anchor": FamilyShape("Wan 1.3B 480p 81 frames + anchor frame (strength 0.4)", 12, (21, 30, 52), 1560,
                                   math.log(0.4)),
}

SETTINGS = {"monarch_default": {}, "monarch_node_default": {"exact_local": 1}}


def extra_bias_mask(shape: FamilyShape, like: torch.Tensor) -> torch.Tensor | None:
    """The additive mask stock attention gets for a biased extra part (None without a bias)."""
    if not shape.extra_bias:
        return None
    mask = torch.zeros(1, 1, 1, shape.tokens, device=like.device, dtype=like.dtype)
    mask[..., shape.video_tokens :] = shape.extra_bias
    return mask


def joint_monarch(q, k, v, shape: FamilyShape, settings: dict) -> torch.Tensor:
    """What the node computes for one joint call: video queries by Monarch with the text keys exact,
    text queries densely over every key."""
    n = shape.video_tokens
    extra = {} if not shape.text_tokens else {"extra_k": k[:, :, n:], "extra_v": v[:, :, n:],
                                              "extra_bias": shape.extra_bias}  # fmt: skip
    video = monarch_attention(q[:, :, :n], k[:, :, :n], v[:, :, :n], shape.grid, backend="triton", **extra, **settings)
    if not shape.text_tokens:
        return video
    if shape.extra_bias:  # the node's path for biased extras' own queries (no mask: two cuDNN parts merged)
        text = attention_with_biased_extras(q[:, :, n:], (k[:, :, :n], v[:, :, :n]), (k[:, :, n:], v[:, :, n:]),
                                            shape.extra_bias)  # fmt: skip
    else:
        text = F.scaled_dot_product_attention(q[:, :, n:], k, v)
    return torch.cat([video, text], dim=2)


def bench_shape(key: str, shape: FamilyShape) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(1, shape.heads, shape.tokens, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
               for _ in range(3))  # fmt: skip

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v)

    methods = {"cudnn_sdpa": cudnn}
    if shape.extra_bias:  # what stock ComfyUI runs for the anchored call: SDPA with the bias mask
        mask = extra_bias_mask(shape, q)
        methods["sdpa_with_bias_mask"] = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    methods.update({name: (lambda s=s: joint_monarch(q, k, v, shape, s)) for name, s in SETTINGS.items()})
    record = {"shape": shape.name, "heads": shape.heads, "grid": list(shape.grid), "text_tokens": shape.text_tokens,
              "extra_bias": shape.extra_bias,
              "tokens": shape.tokens, "settings": SETTINGS, "methods": {}}  # fmt: skip
    for name, fn in methods.items():
        start = time.perf_counter()
        ms = timed(fn)
        record["methods"][name] = {"ms": ms, "wall_s_including_warmup": time.perf_counter() - start}
        print(f"  {key:14s} {name:22s} {ms:9.3f} ms", flush=True)
    base = record["methods"]["cudnn_sdpa"]["ms"]
    for entry in record["methods"].values():
        entry["speedup_vs_cudnn"] = base / entry["ms"]
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {list(SHAPES)}")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {"versions": versions(), "shapes": {}}
    for key in args.shapes.split(","):
        print(f"{key}: {SHAPES[key]}", flush=True)
        result["shapes"][key] = bench_shape(key, SHAPES[key])
    print(f"\n{'shape':15s} {'method':22s} {'ms':>9s} {'vs cuDNN':>9s}")
    for key, record in result["shapes"].items():
        for name, entry in record["methods"].items():
            print(f"{key:15s} {name:22s} {entry['ms']:9.3f} {entry['speedup_vs_cudnn']:8.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
