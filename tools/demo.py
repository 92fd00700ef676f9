"""``make demo``: the pack's reference model streams a long video in a real headless ComfyUI.

Starts ComfyUI with this pack, converts ``workflows/reference_model_streaming_monarch.json`` (UI
format; the weights ship in reference_model/, nothing is downloaded) to an API prompt, queues it over
HTTP, waits, and prints the animated WEBP's path and frame count. It then reads the frames back and
runs the automatic class check (tools/reference_tracking.py) on each chunk-length window: is the
prompt's object there in its colour, moving the prompt's way, with the prompt's outline.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from comfy_host import REPO, ComfyServer, webp_frame_count, webp_frames  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

DEMO_WORKFLOW = REPO / "workflows" / "reference_model_streaming_monarch.json"
DEMO_DIR = REPO / "artifacts" / "demo"


def sampler_inputs(prompt: dict) -> dict:
    return next(n["inputs"] for n in prompt.values() if n["class_type"] == "RTV_StreamingSampler")


def prompt_text(prompt: dict) -> str:
    return next(n["inputs"]["prompt"] for n in prompt.values() if n["class_type"] == "RTV_ReferencePrompt")


def check_windows(frames, text: str, chunk: int, overlap: int) -> list[str]:
    from reference_tracking import check_video

    lines = []
    for start in range(0, max(len(frames) - overlap, 1), chunk - overlap):
        v = check_video(frames[start:start + chunk], text)
        lines.append(f"frames {start:3d}-{start + len(frames[start:start + chunk]) - 1:3d}: "
                     f"colour {'ok' if v.colour_ok else 'NO'}, motion {'ok' if v.motion_ok else 'NO'} "
                     f"(travel {v.travel_along:.2f} frame heights), outline {v.shape_seen}")
    return lines


def main() -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with ComfyServer(workdir=DEMO_DIR) as server:
        print(f"[demo] ComfyUI up at {server.url} in {time.time() - t0:.1f} s (log: {server.log_path})")
        prompt = ui_to_api(json.loads(DEMO_WORKFLOW.read_text()), server.object_info())
        settings, text = sampler_inputs(prompt), prompt_text(prompt)
        print(f"[demo] running {DEMO_WORKFLOW.relative_to(REPO)}: the reference model, \"{text}\", "
              f"{settings['total_frames']} frames in chunks of {settings['chunk_frames']}")
        t1 = time.time()
        result = server.run(prompt)
        webps = [p for nid, n in prompt.items() if n["class_type"] == "SaveAnimatedWEBP" for p in result.files(nid)]
    frames = webp_frame_count(webps[0])
    print(f"[demo] done in {time.time() - t1:.1f} s: {frames} frames (workflow asks for {settings['total_frames']})")
    print(f"[demo] animated WEBP: {webps[0]}")
    print(f"[demo] class check of \"{text}\" per chunk-length window (tools/reference_tracking.py):")
    for line in check_windows(webp_frames(webps[0]), text, settings["chunk_frames"], settings["overlap_frames"]):
        print(f"[demo]   {line}")
    return 0 if frames == settings["total_frames"] else 1


if __name__ == "__main__":
    sys.exit(main())
