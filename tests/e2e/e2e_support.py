"""Helpers shared by the end-to-end test modules.

A module of its own (not conftest.py): several conftest modules exist in this suite, so
``from conftest import ...`` would depend on which one pytest imported last.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from comfy_host import REPO  # noqa: E402
from tiny_models import for_tiny_host  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

ARTIFACTS = REPO / "artifacts"
PACK_MODULE = "custom_nodes.ComfyUI-RealtimeVideo"
CHUNK_WAIT_S = 120


def monarch_node(model: list, **settings) -> dict:
    """An RTV_MonarchAttention node patching ``model`` (a [node id, output] link): the node's required inputs at
    their defaults, overridden by ``settings``."""
    return {"class_type": "RTV_MonarchAttention", "inputs": {
        "model": model, "tile_frames": 1, "h_split": 1, "w_split": 1, "iterations": 1, "dense_first_steps": 0,
        "dense_last_steps": 0, "dense_blocks": "", "backend": "auto", "report_error": False, **settings}}  # fmt: skip


def load_workflow_as_tiny_prompt(path: Path, object_info: dict) -> dict:
    return for_tiny_host(ui_to_api(json.loads(path.read_text()), object_info))


def interrupt_after_chunks(server, prompt_id: str, folder: str, prefix: str, max_chunks: int) -> None:
    """Interrupt a running chunked prompt once two chunks are on disk; check that every finished
    chunk (WEBP + latent) survives, that the run ends as interrupted and the server keeps serving."""
    saved = []
    t0 = time.time()
    while time.time() - t0 < CHUNK_WAIT_S and len(saved) < 2:
        saved = sorted((server.output_dir / folder).glob(f"{prefix}_chunk*.webp"))
        time.sleep(0.2)
    assert len(saved) >= 2, f"no chunk finished within {CHUNK_WAIT_S} s"
    server.post("/interrupt", {})
    history = server.wait(prompt_id, timeout=CHUNK_WAIT_S)
    assert history.status == "error"
    assert history.messages("execution_interrupted")
    after = sorted((server.output_dir / folder).glob(f"{prefix}_chunk*.webp"))
    assert len(saved) <= len(after) < max_chunks
    assert all(p.with_suffix(".latent").is_file() for p in after)
