"""In-process tests against ComfyUI's own modules (no server): put the host's tree on sys.path.

The host is the one tools/bootstrap.sh installs (``.host/ComfyUI``) or ``$COMFYUI_PATH``.
``comfy.cli_args.args.cpu`` must be set before ``comfy.model_management`` is imported.
"""

import os
import sys
from pathlib import Path

COMFY_DIR = Path(os.environ.get("COMFYUI_PATH") or Path(__file__).resolve().parents[2] / ".host" / "ComfyUI")
if not (COMFY_DIR / "comfy").is_dir():
    raise RuntimeError(f"no ComfyUI tree at {COMFY_DIR}: run `make test` (it installs one) or set COMFYUI_PATH")
sys.path.insert(0, str(COMFY_DIR))

import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True
