"""In-process tests against ComfyUI's own modules (no server): put the host's tree on sys.path.

The host is the one tools/bootstrap.sh installs (``.host/ComfyUI``) or ``$COMFYUI_PATH``.
``comfy.cli_args.args.cpu`` must be set before ``comfy.model_management`` is imported (True unless
``RTV_COMFY_GPU=1``).
"""

import os
import sys
from pathlib import Path

import pytest

COMFY_DIR = Path(os.environ.get("COMFYUI_PATH") or Path(__file__).resolve().parents[2] / ".host" / "ComfyUI")
if not (COMFY_DIR / "comfy").is_dir():
    raise RuntimeError(f"no ComfyUI tree at {COMFY_DIR}: run `make test` (it installs one) or set COMFYUI_PATH")
sys.path.insert(0, str(COMFY_DIR))

import comfy.cli_args  # noqa: E402

# RTV_COMFY_GPU=1: ComfyUI on the GPU, for the model-level GPU tests (test_monarch_families_gpu.py), run alone.
comfy.cli_args.args.cpu = os.environ.get("RTV_COMFY_GPU") != "1"


@pytest.fixture(scope="session")
def tiny_ltxv():
    """A tiny random LTX-Video DiT through ComfyUI's real detection and loader (tools/tiny_models.py)."""
    import comfy.sd
    from tiny_models import tiny_ltxv_state_dict

    return comfy.sd.load_diffusion_model_state_dict(tiny_ltxv_state_dict(seed=0))


@pytest.fixture(scope="session")
def tiny_hunyuan():
    """A tiny random HunyuanVideo DiT through ComfyUI's real detection and loader (tools/tiny_models.py)."""
    import comfy.sd
    from tiny_models import tiny_hunyuan_video_state_dict

    return comfy.sd.load_diffusion_model_state_dict(tiny_hunyuan_video_state_dict(seed=0))


@pytest.fixture(scope="session")
def tiny_wan22_5b():
    """A tiny random Wan 2.2 TI2V 5B DiT (48 latent channels) through ComfyUI's real detection and loader."""
    import comfy.sd
    from tiny_models import tiny_wan_state_dict

    return comfy.sd.load_diffusion_model_state_dict(tiny_wan_state_dict("ti2v_5b", seed=0))


@pytest.fixture(scope="session")
def tiny_hunyuan15():
    """A tiny random HunyuanVideo 1.5 DiT through ComfyUI's real detection and loader (tools/tiny_models.py)."""
    import comfy.sd
    from tiny_models import tiny_hunyuan_video15_state_dict

    return comfy.sd.load_diffusion_model_state_dict(tiny_hunyuan_video15_state_dict(seed=0))
