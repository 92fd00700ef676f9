"""``make demo``: run the shipped demo workflow on the tiny models in a real headless ComfyUI.

Starts ComfyUI with this pack, converts ``workflows/<demo>.json`` (UI format, real model names) to
an API prompt, maps it onto the tiny models (tools/tiny_models.for_tiny_host), queues it over HTTP,
waits, and prints the path and frame count of the animated WEBP it wrote.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_host import REPO, ComfyServer, webp_frame_count  # noqa: E402
from tiny_models import for_tiny_host  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

DEMO_WORKFLOW = REPO / "workflows" / "wan21_t2v_monarch_attention.json"
DEMO_DIR = REPO / "artifacts" / "demo"


def expected_frames(prompt: dict) -> int:
    return next(n["inputs"]["length"] for n in prompt.values() if n["class_type"] == "EmptyHunyuanLatentVideo")


def main() -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with ComfyServer(workdir=DEMO_DIR) as server:
        print(f"[demo] ComfyUI up at {server.url} in {time.time() - t0:.1f} s (log: {server.log_path})")
        workflow = json.loads(DEMO_WORKFLOW.read_text())
        prompt = for_tiny_host(ui_to_api(workflow, server.object_info()))
        print(f"[demo] running {DEMO_WORKFLOW.relative_to(REPO)} on the tiny Wan 2.1 model "
              f"({len(prompt)} nodes, {expected_frames(prompt)} frames)")
        t1 = time.time()
        result = server.run(prompt)
        webps = [p for nid, n in prompt.items() if n["class_type"] == "SaveAnimatedWEBP" for p in result.files(nid)]
    frames = webp_frame_count(webps[0])
    print(f"[demo] done in {time.time() - t1:.1f} s: {frames} frames (workflow asks for {expected_frames(prompt)})")
    print(f"[demo] animated WEBP: {webps[0]}")
    return 0 if frames == expected_frames(prompt) else 1


if __name__ == "__main__":
    sys.exit(main())
