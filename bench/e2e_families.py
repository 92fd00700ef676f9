"""One denoising step of ComfyUI's HunyuanVideo (1.0, 1.5), LTX-Video and Wan 2.2 5B models, stock vs RTV_MonarchAttention.

ComfyUI's own model classes at released sizes with random bf16 weights (``random_wan.random_state_dict``),
loaded through ``comfy.sd.load_diffusion_model_state_dict``; one Euler step through ComfyUI's sampler with
cfg 1 (one model call), the same process and inputs for every mode (``e2e_wan.MODES``: stock, the node's
default, plain MonarchRT). HunyuanVideo's joint attention keeps its 256 text tokens exact under Monarch.

* ``hunyuan_720p``: HunyuanVideo 13B (hidden 3072, 20 double + 40 single blocks, 24 heads) at 1280 x 720 x
  129 frames (118800 video tokens);
* ``ltxv13b_704p``: LTX-Video 13B's transformer shape (48 blocks, 32 heads of 128) at 1216 x 704 x 257 frames
  (27588 tokens);
* ``wan22_5b_704p``: Wan 2.2 TI2V 5B (dim 3072, 30 blocks, 24 heads, 48 latent channels) at 1280 x 704 x 121
  frames (27280 tokens);
* ``hunyuan15_720p``: HunyuanVideo 1.5 8.3B (hidden 2048, 54 double blocks, 16 heads, patch 1) at 1280 x 720 x
  121 frames (111600 video tokens and 256 text tokens);
* ``--tiny``: all at toy sizes on the CPU (a smoke test of this script).

    python bench/e2e_families.py --comfy-dir /path/to/ComfyUI --out bench/results/e2e_families_h100.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_wan import MODES, print_step_table, time_modes  # noqa: E402
from random_wan import random_state_dict  # noqa: E402

TEXT_TOKENS = 256


def hunyuan_module(hidden: int, double: int, single: int):
    import comfy.ldm.hunyuan_video.model as hunyuan
    import comfy.ops

    return hunyuan.HunyuanVideo(
        in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=hidden, mlp_ratio=4.0,
        num_heads=hidden // 128, depth=double, depth_single_blocks=single, axes_dim=[16, 56, 56], theta=256,
        patch_size=[1, 2, 2], qkv_bias=True, guidance_embed=True, byt5=False, meanflow=False,
        use_cond_type_embedding=False, vision_in_dim=None, operations=comfy.ops.disable_weight_init)  # fmt: skip


def hunyuan15_module(hidden: int, double: int):
    """HunyuanVideo 1.5 (ComfyUI's HunyuanVideo class with its 1.5 options): patch 1, 32 latent channels (+32
    image, +1 mask concatenated), Qwen2.5-VL text (3584 wide), byT5 glyph text and SigLIP vision tokens."""
    import comfy.ldm.hunyuan_video.model as hunyuan
    import comfy.ops

    return hunyuan.HunyuanVideo(
        in_channels=65, out_channels=32, vec_in_dim=None, context_in_dim=3584, hidden_size=hidden, mlp_ratio=4.0,
        num_heads=hidden // 128, depth=double, depth_single_blocks=0, axes_dim=[16, 56, 56], theta=256,
        patch_size=[1, 1, 1], qkv_bias=True, guidance_embed=False, byt5=True, meanflow=False,
        use_cond_type_embedding=True, vision_in_dim=1152, operations=comfy.ops.disable_weight_init)  # fmt: skip


def wan_module(dim: int, ffn_dim: int, layers: int, channels: int):
    import comfy.ldm.wan.model as wan
    import comfy.ops

    return wan.WanModel(
        model_type="t2v", patch_size=(1, 2, 2), in_dim=channels, out_dim=channels, dim=dim, ffn_dim=ffn_dim,
        freq_dim=256, text_dim=4096, num_heads=dim // 128, num_layers=layers, qk_norm=True, cross_attn_norm=True,
        operations=comfy.ops.disable_weight_init)  # fmt: skip


def ltxv_module(layers: int, head_dim: int):
    import comfy.ldm.lightricks.model as lightricks
    import comfy.ops

    inner = 32 * head_dim
    return lightricks.LTXVModel(
        in_channels=128, cross_attention_dim=inner, attention_head_dim=head_dim, num_attention_heads=32,
        caption_channels=4096, num_layers=layers, positional_embedding_theta=10000.0,
        positional_embedding_max_pos=[20, 2048, 2048], causal_temporal_positioning=False,
        vae_scale_factors=(8, 32, 32), operations=comfy.ops.disable_weight_init)  # fmt: skip


CASES = {
    "hunyuan_720p": {"label": "HunyuanVideo 13B, 720x1280x129", "family": "hunyuan",
                     "build": lambda: hunyuan_module(3072, 20, 40), "latent": (1, 16, 33, 90, 160)},
    "ltxv13b_704p": {"label": "LTX-Video 13B shape, 704x1216x257", "family": "ltxv",
                     "build": lambda: ltxv_module(48, 128), "latent": (1, 128, 33, 22, 38)},
    "wan22_5b_704p": {"label": "Wan 2.2 TI2V 5B, 704x1280x121", "family": "wan",
                      "build": lambda: wan_module(3072, 14336, 30, 48), "latent": (1, 48, 31, 44, 80)},
    "hunyuan15_720p": {"label": "HunyuanVideo 1.5 8.3B, 720x1280x121", "family": "hunyuan15",
                       "build": lambda: hunyuan15_module(2048, 54), "latent": (1, 32, 31, 45, 80)},
}
TINY = {
    "hunyuan_tiny": {"label": "tiny", "family": "hunyuan", "build": lambda: hunyuan_module(256, 2, 2),
                     "latent": (1, 16, 3, 8, 12)},
    "ltxv_tiny": {"label": "tiny", "family": "ltxv", "build": lambda: ltxv_module(2, 4), "latent": (1, 128, 3, 4, 6)},
    "wan22_5b_tiny": {"label": "tiny", "family": "wan", "build": lambda: wan_module(256, 512, 2, 48),
                      "latent": (1, 48, 3, 8, 12)},
    "hunyuan15_tiny": {"label": "tiny", "family": "hunyuan15", "build": lambda: hunyuan15_module(256, 2),
                       "latent": (1, 32, 3, 4, 6)},
}


def conditioning(torch, family: str, g) -> list:
    if family == "hunyuan15":  # Qwen2.5-VL text; the text encoder gives no pooled output
        return [[torch.randn(1, TEXT_TOKENS, 3584, generator=g), {"pooled_output": None}]]
    if family == "wan":  # UMT5-XXL pads to 512 tokens
        return [[torch.randn(1, 512, 4096, generator=g), {}]]
    text = torch.randn(1, TEXT_TOKENS, 4096, generator=g)
    if family == "hunyuan":
        return [[text, {"pooled_output": torch.randn(1, 768, generator=g)}]]
    return [[text, {"attention_mask": torch.ones(1, TEXT_TOKENS, dtype=torch.long)}]]


def bench_case(args, torch, comfy, case: dict) -> dict:
    on_cuda = torch.cuda.is_available() and not args.tiny
    dtype = torch.bfloat16 if on_cuda else torch.float32
    device = "cuda" if on_cuda else "cpu"
    t0 = time.time()
    with torch.device("meta"):
        module = case["build"]()
    sd = random_state_dict(module, dtype, device)
    base = comfy.sd.load_diffusion_model_state_dict(sd, model_options={"dtype": dtype})
    del sd, module
    build_s = time.time() - t0
    g = torch.Generator().manual_seed(0)
    latent = torch.zeros(case["latent"])
    noise = torch.randn(case["latent"], generator=g)
    positive = conditioning(torch, case["family"], g)
    sigmas = torch.tensor([0.9, 0.0])
    rows = time_modes(args, torch, comfy, base, (latent, noise, positive, sigmas), on_cuda)
    return {"label": case["label"], "latent": list(case["latent"]), "build_s": round(build_s, 1), "modes": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", default=str(REPO / ".host" / "ComfyUI"))
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {list(CASES)}")
    ap.add_argument("--modes", default="stock,monarch,monarch_rt", help=f"comma list of {list(MODES)} (stock first)")
    ap.add_argument("--repeats", type=int, default=2, help="timed steps per mode after one warm-up")
    ap.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: a smoke test of this script")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    sys.path.insert(0, args.comfy_dir)
    sys.path.insert(0, str(REPO / "tools"))
    import comfy.cli_args
    import torch

    on_cuda = torch.cuda.is_available() and not args.tiny
    comfy.cli_args.args.cpu = not on_cuda
    comfy.cli_args.args.highvram = on_cuda  # whole model resident: time attention, not weight transfers
    import comfy.model_management as mm
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    from pack_import import load_pack

    load_pack("rtv")
    cases = TINY if args.tiny else {c.strip(): CASES[c.strip()] for c in args.cases.split(",")}
    results = {}
    for name, case in cases.items():
        print(f"{name}: {case['label']}", flush=True)
        try:
            results[name] = bench_case(args, torch, comfy, case)
        except torch.OutOfMemoryError as e:
            results[name] = {"label": case["label"], "skipped": f"out of device memory: {e}"[:300]}
            print("  skipped: out of device memory", flush=True)
        mm.unload_all_models()
        mm.soft_empty_cache()
    device_name = torch.cuda.get_device_name() if on_cuda else "cpu"
    info = {"device": device_name, "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version() if on_cuda else None,
            "triton": __import__("triton").__version__ if on_cuda else None,
            "step": "comfy.sample.sample_custom, euler, sigmas [0.9, 0.0], cfg 1 (one model call)",
            "text_tokens": TEXT_TOKENS, "cases": results}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=1) + "\n")
    print_step_table(results, "case")
    print(f"\n{device_name}, torch {info['torch']}, cuDNN {info['cudnn']}, triton {info['triton']}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
