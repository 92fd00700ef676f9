"""RTV_TemporalAlign and RTV_TemporalMetrics in a real server: the node contract as the frontend sees
it, joining two clips through core LoadImage, the streaming -> align -> metrics workflow on the tiny
model, and errors that say what to change."""

import json
import statistics
import sys
from pathlib import Path

import pytest
import torch
from comfy_host import webp_frame_count
from e2e_support import ARTIFACTS, load_workflow_as_tiny_prompt
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from synthetic_scenes import SinusoidTexture  # noqa: E402

pytestmark = pytest.mark.e2e

NODES = ("RTV_TemporalAlign", "RTV_TemporalMetrics")
WORKFLOW = ARTIFACTS.parent / "workflows" / "wan21_t2v_streaming_temporal_align.json"
SIZE, CLIP, OVERLAP = 128, 12, 5


def test_nodes_follow_the_contract(pack_nodes):
    for name in NODES:
        info = pack_nodes[name]
        assert info["display_name"].endswith("(RTV)")
        assert info["category"] == "RealtimeVideo/temporal"
        for section in ("required", "optional"):
            for key, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{key} has no tooltip"
    align = pack_nodes["RTV_TemporalAlign"]["input"]
    assert list(align["required"]) == [
        "images",
        "chunk_frames",
        "overlap_frames",
        "method",
        "color_correction",
        "strength",
    ]
    assert align["required"]["method"][1]["options"] == ["flow_blend", "crossfade", "none"]
    assert align["required"]["color_correction"][1]["options"] == ["none", "mean_std", "lab"]
    assert pack_nodes["RTV_TemporalMetrics"]["output"] == ["STRING"]


def write_clip(path: Path, frames: torch.Tensor) -> None:
    """A multi-page TIFF (8-bit, lossless): core LoadImage returns all pages as one IMAGE batch."""
    images = [Image.fromarray((f.permute(1, 2, 0) * 255).round().byte().numpy()) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:])


@pytest.fixture(scope="module")
def two_clips(server):
    """Clip B repeats clip A's last 5 frames shifted by 8 px and 10 % brighter, then goes on."""
    texture = SinusoidTexture.random(3)

    def render(t, shift=0.0, gain=1.0):
        return (texture.render_shifted((1.5 * t + shift, -0.75 * t), SIZE) * gain).clamp(0, 1)

    start = CLIP - OVERLAP
    write_clip(server.workdir / "input" / "rtv_clip_a.tif", torch.stack([render(t) for t in range(CLIP)]))
    write_clip(
        server.workdir / "input" / "rtv_clip_b.tif",
        torch.stack([render(t, 8.0, 1.1) for t in range(start, start + CLIP + 24)]),
    )
    return "rtv_clip_a.tif", "rtv_clip_b.tif"


def join_graph(clip_a, clip_b, method, **extra):
    metrics = {"chunk_frames": 0, "overlap_frames": 0, "max_side": 0, "pairs_per_batch": 8}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": clip_a}},
        "2": {"class_type": "LoadImage", "inputs": {"image": clip_b}},
        "3": {
            "class_type": "RTV_TemporalAlign",
            "inputs": {
                "images": ["1", 0],
                "next_clip": ["2", 0],
                "chunk_frames": 81,
                "overlap_frames": OVERLAP,
                "method": method,
                "color_correction": "mean_std",
                "strength": 1.0,
                **extra,
            },
        },
        "4": {"class_type": "RTV_TemporalMetrics", "inputs": {"images": ["3", 0], **metrics}},
        "5": {"class_type": "RTV_TemporalMetrics", "inputs": {"images": ["1", 0], **metrics}},
        "6": {"class_type": "RTV_TemporalMetrics", "inputs": {"images": ["2", 0], **metrics}},
        **{f"{n}0": {"class_type": "PreviewAny", "inputs": {"source": [n, 0]}} for n in ("4", "5", "6")},
    }


def metrics_of(result, node_id):
    """The full JSON (per-pair lists included) from the STRING output, shown by core PreviewAny; the
    node's own text is the headline without the lists."""
    return json.loads(result.text(f"{node_id}0")[0])


def test_joining_two_clips_with_a_shifted_brighter_overlap(server, two_clips):
    """Issue 7 seam test through the server (8-bit frames): the seam's worst pair is within 1.25x of
    the clips' own warp error, and far below the crossfade's."""
    aligned = server.run(join_graph(*two_clips, "flow_blend"))
    crossfade = server.run(join_graph(*two_clips, "crossfade"))
    joined = metrics_of(aligned, "4")
    assert joined["frames"] == CLIP + CLIP + 24 - OVERLAP
    within = statistics.fmean(metrics_of(aligned, "5")["warp_error"] + metrics_of(aligned, "6")["warp_error"])
    seam = joined["warp_error"][CLIP - OVERLAP - 1 : CLIP]
    theirs = metrics_of(crossfade, "4")["warp_error"][CLIP - OVERLAP - 1 : CLIP]
    print(
        f"within {within:.3f}, seam max {max(seam):.3f} ({max(seam) / within:.2f}x), crossfade {max(theirs):.2f}"
    )
    assert max(seam) <= 1.25 * within
    assert max(seam) < max(theirs) / 10
    report = json.loads(aligned.text("3")[0])
    assert report["frames_out"] == joined["frames"] and report["seams"][0]["jump_px"] == pytest.approx(
        8, abs=0.5
    )


def test_back_to_back_chunks_lose_their_repeated_overlap(server, two_clips):
    graph = join_graph(*two_clips, "crossfade")
    graph["7"] = {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["1", 0]}}
    graph["3"]["inputs"].update(images=["7", 0], chunk_frames=CLIP, layout="back_to_back")
    del graph["3"]["inputs"]["next_clip"]
    assert metrics_of(server.run(graph), "4")["frames"] == 2 * CLIP - OVERLAP


def test_streaming_align_metrics_workflow_on_the_tiny_model(server, object_info):
    prompt = load_workflow_as_tiny_prompt(WORKFLOW, object_info)
    for node in prompt.values():
        if node["class_type"] == "RTV_StreamingSampler":
            node["inputs"]["steps"] = 2
    result = server.run(prompt)
    saved = [n for n, node in prompt.items() if node["class_type"] == "SaveAnimatedWEBP"]
    assert webp_frame_count(result.files(saved[0])[0]) == 145
    reports = [
        json.loads(result.text(n)[0])
        for n, node in prompt.items()
        if node["class_type"] == "RTV_TemporalMetrics"
    ]
    assert len(reports) == 2
    for report in reports:
        assert report["frames"] == 145 and [s["frame"] for s in report["seams"]] == [81]
        assert report["mawe"] is not None and report["within_chunk_warp_error"] is not None
    raw, aligned = sorted(reports, key=lambda r: r["seams"][0]["flicker"], reverse=True)
    print("raw seam", raw["seams"][0], "aligned seam", aligned["seams"][0])


@pytest.mark.parametrize(
    ("node", "inputs", "message"),
    [
        ("RTV_TemporalAlign", {"chunk_frames": 9, "overlap_frames": 9}, "overlap_frames < chunk_frames"),
        ("RTV_TemporalMetrics", {"chunk_frames": 9, "overlap_frames": 12}, "must be below chunk_frames"),
    ],
)
def test_bad_chunking_says_what_to_change(server, two_clips, node, inputs, message):
    graph = join_graph(*two_clips, "flow_blend")
    if node == "RTV_TemporalAlign":
        del graph["3"]["inputs"]["next_clip"]
        graph["3"]["inputs"].update(inputs)
    else:
        graph["5"]["inputs"].update(inputs)
    result = server.run(graph, expect_success=False)
    assert message in result.messages("execution_error")[0]["exception_message"]
