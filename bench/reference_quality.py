"""Quality numbers on the project's own trained reference model (issue 10 item 4 and its Must-show lines).

The model is tools/train_reference.py's small Wan 2.1 T2V DiT and Wan 2.1 VAE, loaded through ComfyUI's
own loaders; sizes, prompt classes, steps and cfg come from the config the trainer stores in the
weights. Four sections, each in its own module:

1. attention of real forward passes (reference_quality_attention.py): per block, attention entropy
   vs log N and Monarch vs exact attention for the settings of bench/monarch_quality.py; the same on
   a random-weight model of the same architecture as the contrast row;
2. sampled videos (reference_quality_video.py): stock KSampler sampling with dense attention and
   with RTV_MonarchAttention settings, same seeds: distance to the dense video, recognisability;
3. streaming (reference_quality_stream.py): videos of several chunks, seam and drift metrics with
   and without temporal align, recognisability of the long video;
4. interpolation (reference_quality_video.py): dropped frames rebuilt by flow vs plain blend, PSNR
   against the model's own frames (and, as a reference, against held-out procedural clips).

Prints markdown tables and writes JSON to bench/results/reference_quality_<device>.json. CPU is
enough (the model is tiny); the Monarch numbers use the float32 torch reference. At the trained size
(33 frames, 96x128, 12 classes) a run took 17 minutes on 2 CPU cores (measured on random weights of
that size), most of it the 108 sampled videos of section 2 (``--videos-per-class``, ``--classes``).

    tools/hostpy bench/reference_quality.py                      # the weights in reference_model/
    tools/hostpy bench/reference_quality.py --weights-dir DIR
    tools/hostpy bench/reference_quality.py --smoke              # harness check on the smoke weights
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))

from comfy_modules import import_comfy  # noqa: E402
from pack_import import load_pack  # noqa: E402
from train_reference import DIT_FILE, HELD_OUT_SEED, VAE_FILE, WEIGHTS_DIR, Config  # noqa: E402

load_pack("rtv")

RANDOM_SEED_OFFSET = 1000
"""The random-weight contrast model is seeded like the trainer's (config seed + 1000)."""
VIDEO_SEED_STRIDE = 1000
STREAM_SEED_OFFSET = 500
SIGMA_FRACTIONS = (0.25, 0.5, 0.75, 0.9)
"""Where in a simple-schedule run the attention is captured: sigma = shift(1 - fraction), about
0.96, 0.89, 0.73 and 0.47 at Wan's shift 8 (most of the run is at high noise)."""
SMOKE = dict(attention_clips=1, sigma_fractions="0.5,0.9", stream_videos=1)


def table_settings():
    """The rows of the README's synthetic Monarch table, plus iterations 2."""
    from monarch_quality import Setting

    return {
        "MonarchRT (exact_local -1)": Setting(),
        "h_split 2": Setting(h_split=2),
        "w_split 2": Setting(w_split=2),
        "iterations 2": Setting(iterations=2),
        "iterations 3": Setting(iterations=3),
        "exact_local 0": Setting(exact_local=0),
        "exact_local 1 (node default)": Setting(exact_local=1),
        "exact_local 1, iterations 2": Setting(exact_local=1, iterations=2),
    }


def weight_paths(args) -> tuple[Path, Path]:
    if args.smoke:
        from reference_smoke import smoke_weights

        found = smoke_weights()
        return found["dit"], found["vae"]
    folder = Path(args.weights_dir or WEIGHTS_DIR)
    dit, vae = folder / DIT_FILE, folder / VAE_FILE
    if not (dit.is_file() and vae.is_file()):
        raise SystemExit(
            f"no trained reference weights in {folder} ({DIT_FILE}, {VAE_FILE}): train them with "
            "tools/train_reference.py (see reference_model/README.md), pass --weights-dir, or "
            "use --smoke for a harness check"
        )
    return dit, vae


def trained_config(dit_path: Path) -> dict:
    """The trainer's Config as stored in the DiT file's metadata (defaults for missing fields)."""
    from safetensors import safe_open

    with safe_open(str(dit_path), "pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise SystemExit(
            f"{dit_path} has no trainer config in its metadata: was it written by tools/train_reference.py?"
        )
    return {**dataclasses.asdict(Config()), **json.loads(meta["config"])}


def random_weight_model(comfy, cfg: dict):
    """Same architecture, Wan init with a random output head (as the trainer's random_dit)."""
    import reference_dit

    dit = reference_dit.build_dit(
        cfg["dit_dim"], cfg["dit_ffn"], cfg["dit_layers"], cfg["seed"] + RANDOM_SEED_OFFSET
    )
    torch.nn.init.xavier_uniform_(dit.head.head.weight)
    return comfy.sd.load_diffusion_model_state_dict(dit.state_dict(), model_options={"dtype": torch.float32})


def run(args, comfy) -> dict:
    from monarch_quality import settings_for
    from procedural_video import generate_clips
    from reference_dit import shift_sigma
    from reference_quality_attention import encoded_clips, measure_attention
    from reference_quality_report import print_report
    from reference_quality_stream import streaming_quality
    from reference_quality_video import compare_sampling, interpolation_quality, varied_prompts

    from rtv.kernels.reference_prompts import PROMPT_TEXTS

    dit_path, vae_path = weight_paths(args)
    cfg = trained_config(dit_path)
    model = comfy.sd.load_diffusion_model(str(dit_path), model_options={"dtype": torch.float32})
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(vae_path)))
    random_model = random_weight_model(comfy, cfg)
    prompts = list(PROMPT_TEXTS[: args.classes or cfg["classes"] or len(PROMPT_TEXTS)])
    latent_shape = (1, 16, 1 + (cfg["frames"] - 1) // 4, cfg["height"] // 8, cfg["width"] // 8)
    grid = (latent_shape[2], latent_shape[3] // 2, latent_shape[4] // 2)
    clip_size = (cfg["frames"], cfg["height"], cfg["width"])
    named = table_settings()
    video_settings = (
        [named["MonarchRT (exact_local -1)"], named["exact_local 1 (node default)"]]
        if args.smoke
        else list(named.values())
    )
    attention_settings = list(named.values()) if args.smoke else settings_for(grid, grid[0])
    sigmas = [float(shift_sigma(torch.tensor(1 - float(f)))) for f in args.sigma_fractions.split(",")]
    jobs = [
        (p, HELD_OUT_SEED + c + VIDEO_SEED_STRIDE * j)
        for c, p in enumerate(prompts)
        for j in range(args.videos_per_class)
    ]
    stream_jobs = [
        (p, HELD_OUT_SEED + STREAM_SEED_OFFSET + i)
        for i, p in enumerate(varied_prompts(prompts, args.stream_videos))
    ]
    record = {
        "weights": {"dit": str(dit_path), "vae": str(vae_path), "smoke": args.smoke, "config": cfg},
        "table_settings": {name: s.label() for name, s in named.items()},
        "wall_s": {},
    }

    def timed(section: str, fn):
        print(f"[{section}]", flush=True)
        t0 = time.time()
        result = fn()
        record["wall_s"][section] = round(time.time() - t0, 1)
        return result

    with torch.inference_mode():
        clip_prompts = varied_prompts(prompts, args.attention_clips)
        seeds = [HELD_OUT_SEED + i for i in range(len(clip_prompts))]
        inputs = encoded_clips(vae, clip_prompts, seeds, clip_size)
        record["attention"] = {
            "trained": timed(
                "attention, trained",
                lambda: measure_attention(comfy, model, inputs, sigmas, grid, attention_settings),
            ),
            "random_weights": timed(
                "attention, random weights",
                lambda: measure_attention(comfy, random_model, inputs, sigmas, grid, attention_settings),
            ),
        }
        record["sampled_videos"], dense_videos = timed(
            "sampled videos",
            lambda: compare_sampling(
                comfy, model, vae, jobs, latent_shape, cfg["sample_steps"], cfg["cfg"], video_settings
            ),
        )
        record["streaming"] = timed(
            "streaming",
            lambda: streaming_quality(
                model,
                vae,
                stream_jobs,
                cfg["frames"],
                args.stream_chunks,
                cfg["width"],
                cfg["height"],
                cfg["sample_steps"],
                cfg["cfg"],
            ),
        )
        # the same rebuild on held-out training-like clips: how interpolable the data's own motion is
        clips = generate_clips([PROMPT_TEXTS.index(p) for p, _ in jobs], [s for _, s in jobs], *clip_size)
        record["interpolation"] = timed(
            "interpolation",
            lambda: {
                "model_samples": interpolation_quality(dense_videos, [p for p, _ in jobs]),
                "procedural_clips": interpolation_quality(list(clips), [p for p, _ in jobs]),
            },
        )
    print_report(record, named)
    return record


def output_path(args) -> Path:
    if args.out:
        return Path(args.out)
    if args.smoke:
        return Path(tempfile.mkdtemp(prefix="rtv-reference-quality-")) / "reference_quality_smoke.json"
    tag = (
        "cpu"
        if args.device == "cpu"
        else torch.cuda.get_device_name().lower().replace("nvidia ", "").split()[0]
    )
    return REPO / "bench" / "results" / f"reference_quality_{tag}.json"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--weights-dir", help=f"folder with {DIT_FILE} and {VAE_FILE} (default: reference_model/)"
    )
    ap.add_argument(
        "--smoke", action="store_true", help="the smoke-trained weights (tests): a harness check only"
    )
    ap.add_argument(
        "--out", help="JSON path (default: bench/results/reference_quality_<device>.json; --smoke: temp)"
    )
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    ap.add_argument("--comfyui", help="ComfyUI tree (default: $COMFYUI_PATH, else .host/ComfyUI)")
    ap.add_argument(
        "--attention-clips", type=int, default=3, help="procedural clips whose attention is captured"
    )
    ap.add_argument(
        "--sigma-fractions",
        default=",".join(map(str, SIGMA_FRACTIONS)),
        help="points of a sampling run (0: start, 1: end) whose sigma the clips are noised to",
    )
    ap.add_argument("--classes", type=int, default=0, help="prompt classes sampled (0: all the model knows)")
    ap.add_argument(
        "--videos-per-class", type=int, default=1, help="seeds per class in the sampled-video section"
    )
    ap.add_argument("--stream-videos", type=int, default=4, help="long videos in the streaming section")
    ap.add_argument("--stream-chunks", type=int, default=3, help="chunks per long video")
    args = ap.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            if getattr(args, key) == ap.get_default(key):
                setattr(args, key, value)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import_comfy(args.comfyui, cpu=args.device == "cpu")
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    import comfy.utils

    record = {
        "environment": {
            "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
            "processor": platform.processor(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        **run(args, comfy),
    }
    out = output_path(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {out} ({sum(record['wall_s'].values()):.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
