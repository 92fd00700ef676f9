"""Helpers shared by the end-to-end test modules.

A module of its own (not conftest.py): several conftest modules exist in this suite, so
``from conftest import ...`` would depend on which one pytest imported last.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from comfy_host import REPO  # noqa: E402
from tiny_models import for_tiny_host  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

ARTIFACTS = REPO / "artifacts"
PACK_MODULE = "custom_nodes.ComfyUI-RealtimeVideo"


def load_workflow_as_tiny_prompt(path: Path, object_info: dict) -> dict:
    return for_tiny_host(ui_to_api(json.loads(path.read_text()), object_info))
