"""Reference-model weights from a ``--smoke`` training run, for tests until the real weights exist.

The smoke run (tools/train_reference.py --smoke: tiny sizes, a few steps on the CPU) writes real
ComfyUI-layout files of the same architecture. They are built once per version of the training code
(a hash of its sources) into the development host's models folders, under ``rtv_reference_smoke/``,
where the test server's UNETLoader and VAELoader find them:

    .host/models/diffusion_models/rtv_reference_smoke/rtv_reference_wan_t2v.safetensors
    .host/models/vae/rtv_reference_smoke/rtv_reference_wan_vae.safetensors
    .host/models/diffusion_models/rtv_reference_smoke/reference_training.json
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / ".host" / "models"
SMOKE_FOLDER = "rtv_reference_smoke"
DIT_NAME = f"{SMOKE_FOLDER}/rtv_reference_wan_t2v.safetensors"
VAE_NAME = f"{SMOKE_FOLDER}/rtv_reference_wan_vae.safetensors"
SOURCES = ("tools/train_reference.py", "tools/reference_vae.py", "tools/reference_dit.py",
           "tools/procedural_video.py", "tools/reference_tracking.py", "tools/comfy_modules.py",
           "kernels/reference_prompts.py")
SMOKE_TIMEOUT_S = 600


def sources_hash() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update((REPO / name).read_bytes())
    return h.hexdigest()[:16]


def smoke_weights(models_dir: Path = MODELS_DIR) -> dict:
    """Paths of the smoke-trained DiT, VAE and training report (built if missing or stale)."""
    dit = models_dir / "diffusion_models" / DIT_NAME
    vae = models_dir / "vae" / VAE_NAME
    report = dit.parent / "reference_training.json"
    stamp = dit.parent / "sources.sha"
    version = sources_hash()
    if not (dit.is_file() and vae.is_file() and report.is_file() and stamp.is_file()
            and stamp.read_text() == version):
        with tempfile.TemporaryDirectory(prefix="rtv-reference-smoke-") as out:
            subprocess.run([sys.executable, str(REPO / "tools" / "train_reference.py"), "--smoke", "--out", out,
                            "--threads", "1"], check=True, timeout=SMOKE_TIMEOUT_S, cwd=REPO)
            for src, dst in ((Path(out) / "rtv_reference_wan_t2v.safetensors", dit),
                             (Path(out) / "rtv_reference_wan_vae.safetensors", vae),
                             (Path(out) / "reference_training.json", report)):
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        stamp.write_text(version)
    return {"dit": dit, "vae": vae, "report": json.loads(report.read_text()), "dit_name": DIT_NAME,
            "vae_name": VAE_NAME}
