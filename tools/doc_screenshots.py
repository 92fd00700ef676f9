"""Pictures of shipped workflows for the README, taken in the real frontend (headless Chromium).

Starts ComfyUI with this pack, loads each named workflow from workflows/ and saves a screenshot at a
zoom where the frontend draws node text (below ~0.6 it draws plain boxes), to docs/workflow_<name>.png:

    .host/venv/bin/python tools/doc_screenshots.py hunyuan_video_long_streaming ltxv_long_streaming
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import Browser  # noqa: E402
from comfy_host import REPO, ComfyServer, free_port  # noqa: E402

SCALE = 0.68


async def shoot(server: ComfyServer, names: list[str]) -> None:
    async with Browser(free_port()) as browser:
        await browser.open(server.url + "/", "window.app && window.app.graph && window.LiteGraph")
        for name in names:
            workflow = json.loads((REPO / "workflows" / f"{name}.json").read_text())
            await browser.js(f"app.loadGraphData({json.dumps(workflow)}, true, true, {json.dumps(name)})")
            await asyncio.sleep(1.0)
            # the top-left node at (70, 130) px on screen: below the page's header and banner
            await browser.js(f"(() => {{ const ds = app.canvas.ds; ds.scale = {SCALE};"
                             " const xs = app.graph._nodes.map((n) => n.pos[0]), ys = app.graph._nodes.map((n) => n.pos[1]);"
                             f" ds.offset = [70 / {SCALE} - Math.min(...xs), 150 / {SCALE} - Math.min(...ys)];"
                             " app.canvas.setDirty(true, true); return true })()")
            await asyncio.sleep(0.8)
            out = await browser.screenshot(REPO / "docs" / f"workflow_{name}.png")
            print(f"wrote {out.relative_to(REPO)}")


def main() -> int:
    names = sys.argv[1:]
    if not names:
        raise SystemExit(__doc__)
    with ComfyServer() as server:
        server.post("/settings/Comfy.TutorialCompleted", True)
        asyncio.run(shoot(server, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
