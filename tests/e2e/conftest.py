"""One real ComfyUI server per test session (``main.py --cpu``, this pack loaded as a custom_nodes
entry, tiny models, its own output folder). The server log is kept under artifacts/ for CI."""

import shutil

import pytest
from comfy_host import ComfyServer
from e2e_support import ARTIFACTS, PACK_MODULE


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

