"""One real ComfyUI server per test session (``main.py --cpu``, this pack loaded as a custom_nodes
entry, tiny models, its own output folder). The server log is kept under artifacts/ for CI."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from comfy_host import REPO, ComfyServer  # noqa: E402
from tiny_models import for_tiny_host  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

ARTIFACTS = REPO / "artifacts"
PACK_MODULE = "custom_nodes.ComfyUI-RealtimeVideo"


@pytest.fixture(scope="session")
def server():
    srv = ComfyServer().start()
    try:
        yield srv
    finally:
        srv.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(srv.log_path, ARTIFACTS / "e2e-server.log")
        srv.cleanup()


@pytest.fixture(scope="session")
def object_info(server):
    return server.object_info()


@pytest.fixture(scope="session")
def pack_nodes(object_info):
    nodes = {name: info for name, info in object_info.items() if info.get("python_module") == PACK_MODULE}
    assert nodes, "no node of this pack is registered: see artifacts/e2e-server.log for IMPORT FAILED"
    return nodes


def load_workflow_as_tiny_prompt(path: Path, object_info: dict) -> dict:
    return for_tiny_host(ui_to_api(json.loads(path.read_text()), object_info))
