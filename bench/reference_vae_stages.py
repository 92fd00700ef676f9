"""Does the reference VAE need whole clips? One stage of short clips vs two stages, equal time.

H100 runs 3-5 (bench/results/reference_training_h100_run*.json) trained the reference VAE on
9-frame clips and decoded 33-frame clips well for 9 frames, then worse and worse. This trains the
same VAE (ComfyUI's WanVAE through tools/train_reference.py) at a small frame size on the CPU, the
temporal structure unchanged, for the same wall time: (a) 9-frame clips only, (b) 9-frame clips,
then the DiT's 33-frame clips at a lower rate (the trainer's default). Prints PSNR per frame of
held-out 33-frame clips and writes JSON.

    python bench/reference_vae_stages.py                 # about 14 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfy-dir", default=str(REPO / ".host" / "ComfyUI"))
    ap.add_argument("--seconds", type=float, default=400.0, help="VAE training time per variant")
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "reference_vae_stages_cpu.json"))
    args = ap.parse_args()
    sys.path[:0] = [args.comfy_dir, str(REPO / "tools")]
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import torch
    import train_reference

    half = args.seconds / 2
    variants = {
        "one stage: 9-frame clips": dict(vae_budget_s=args.seconds, vae_long_steps=0),
        "two stages: 9-frame, then 33-frame clips": dict(vae_budget_s=half, vae_long_budget_s=half),
    }
    rows = {}
    for name, stages in variants.items():
        cfg = train_reference.Config(height=args.height, width=args.width, vae_batch=16, vae_long_batch=4,
                                     eval_clips=12, **stages)  # fmt: skip
        trainer = train_reference.Trainer(cfg, torch.device("cpu"))
        trainer.train_vae()
        vae = trainer.report["vae"]
        rows[name] = {key: vae[key] for key in ("stages", "psnr_db", "psnr_per_frame_db")}
    print(f"\n{'variant':44s} {'PSNR':>6s} {'frames 0-8':>10s} {'24-32':>6s}")
    for name, row in rows.items():
        per = row["psnr_per_frame_db"]
        print(f"{name:44s} {row['psnr_db']:6.2f} {sum(per[:9]) / 9:10.2f} {sum(per[24:]) / len(per[24:]):6.2f}")
    result = {"device": "cpu", "torch": torch.__version__, "size": [args.width, args.height],
              "seconds_per_variant": args.seconds, "variants": rows}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
