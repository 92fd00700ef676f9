"""Import ComfyUI's model classes (WanModel, WanVAE, latent formats) on a machine with only torch.

The reference trainer runs on a lent GPU machine that has torch, numpy, safetensors and einops but
no ComfyUI install and no network: the ComfyUI tree is copied there and put on ``sys.path``. Its
model modules import ``comfy.model_management`` at module level, which needs ``psutil`` (RAM size)
and, through ``comfy.ldm.util``, ``PIL`` (only for drawing text on images). When either is missing,
a minimal stand-in is registered first; nothing the trainer calls uses them beyond the RAM query.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def comfy_dir(explicit: str | None = None) -> Path:
    """--comfyui, else $COMFYUI_PATH, else the development host's tree (.host/ComfyUI)."""
    path = Path(explicit or os.environ.get("COMFYUI_PATH") or REPO / ".host" / "ComfyUI")
    if not (path / "comfy" / "ldm" / "wan" / "model.py").is_file():
        raise SystemExit(f"no ComfyUI tree at {path}: pass --comfyui DIR or set COMFYUI_PATH")
    return path


def _stand_in_psutil() -> types.ModuleType:
    module = types.ModuleType("psutil")

    def virtual_memory():
        page = os.sysconf("SC_PAGE_SIZE")
        total = page * os.sysconf("SC_PHYS_PAGES")
        available = page * os.sysconf("SC_AVPHYS_PAGES")
        return types.SimpleNamespace(total=total, available=available)

    module.virtual_memory = virtual_memory
    return module


def _stand_in_pil() -> types.ModuleType:
    module = types.ModuleType("PIL")
    for name in ("Image", "ImageDraw", "ImageFont"):
        setattr(module, name, types.ModuleType(f"PIL.{name}"))
    return module


def import_comfy(explicit_dir: str | None = None, cpu: bool | None = None) -> types.ModuleType:
    """Put ComfyUI on sys.path and return ``comfy`` with its Wan modules imported. ``cpu`` (default:
    no CUDA) must be settled before comfy.model_management is imported: it probes the device then."""
    import torch

    root = str(comfy_dir(explicit_dir))
    if root not in sys.path:
        sys.path.insert(0, root)
    for name, stand_in in (("psutil", _stand_in_psutil), ("PIL", _stand_in_pil)):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = stand_in()
            if name == "PIL":
                sys.modules.update({f"PIL.{n}": getattr(sys.modules["PIL"], n)
                                    for n in ("Image", "ImageDraw", "ImageFont")})
    import comfy.cli_args

    if "comfy.model_management" not in sys.modules:
        comfy.cli_args.args.cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    import comfy.latent_formats
    import comfy.ldm.wan.model
    import comfy.ldm.wan.vae
    import comfy.ops

    return comfy
