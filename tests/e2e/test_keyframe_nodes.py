"""RTV_KeyframeInterpolate and RTV_HybridKeyframeVideo in a real server (issue 8): in-between quality
on rendered scenes with exact ground truth, exact frame counts, keyframe plans and poses, the hybrid
workflows on the tiny models in both fill modes, errors that say what to change."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from synthetic_scenes import MovingObjectScene, psnr  # noqa: E402

pytestmark = pytest.mark.e2e

MIDDLE_PSNR_DB = 32.0
GAIN_OVER_BLEND_DB = 8.0
# Three keyframes one time unit apart: a textured disc moving 8 px per unit over a panning background.
SCENE = MovingObjectScene((8.0, 0.0), (2.0, -1.0), radius=48.0)


def write_frames(path: Path, frames: torch.Tensor) -> None:
    """A multi-page TIFF (8-bit, lossless): core LoadImage returns all pages as one IMAGE batch."""
    images = [Image.fromarray(quantize(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:])


def quantize(frame: torch.Tensor) -> np.ndarray:
    return (frame.permute(1, 2, 0) * 255).round().byte().numpy()


def read_png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255


def interpolate_graph(image: str, prefix: str, **inputs) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {
            "class_type": "RTV_KeyframeInterpolate",
            "inputs": {"images": ["1", 0], "frames_between": 1, "method": "flow", **inputs},
        },
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": f"rtv_kf/{prefix}"},
        },
    }


@pytest.fixture(scope="module")
def keyframes(server):
    """Keyframes at t = 0, 1, 2 (256 x 256, 8-bit) and the exact in-betweens at t = 0.5, 1.5."""
    frames = SCENE.frames([0.0, 1.0, 2.0])
    write_frames(server.workdir / "input" / "rtv_keyframes.tif", frames)
    truth = SCENE.frames([0.5, 1.5])
    return "rtv_keyframes.tif", frames, truth


def test_flow_in_betweens_beat_the_blend_by_8_db(server, keyframes):
    """Issue 8 Must-show: the middle frame >= 32 dB and >= 8 dB better than a linear blend."""
    name, frames, truth = keyframes
    result = server.run(interpolate_graph(name, "psnr"))
    out = [read_png(p) for p in result.files("3")]
    assert len(out) == 5
    quantized = [torch.from_numpy(quantize(f)).permute(2, 0, 1).float() / 255 for f in frames]
    assert torch.equal(out[0], quantized[0]) and torch.equal(out[2], quantized[1])  # keyframes kept exactly
    for index, (middle, exact) in enumerate(zip((out[1], out[3]), truth)):
        ours = psnr(middle, exact)
        blend = psnr(0.5 * frames[index] + 0.5 * frames[index + 1], exact)
        print(f"gap {index}: flow {ours:.2f} dB, blend {blend:.2f} dB")
        assert ours >= MIDDLE_PSNR_DB
        assert ours >= blend + GAIN_OVER_BLEND_DB


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"frames_between": 0}, 3),
        ({"frames_between": 3}, 9),
        ({"frames_between": 3, "multiplier": 2}, 5),
        ({"multiplier": 4, "method": "blend"}, 9),
        ({"frames_per_gap": "2, 5"}, 10),
        ({"frames_per_gap": "0, 4", "pairs_per_batch": 1}, 7),
    ],
)
def test_output_frame_count_is_exact(server, keyframes, inputs, expected):
    result = server.run(interpolate_graph(keyframes[0], "count", **inputs))
    assert len(result.files("3")) == expected
    assert json.loads(result.text("2")[0])["frames_out"] == expected


def test_bad_per_gap_list_says_what_to_change(server, keyframes):
    result = server.run(
        interpolate_graph(keyframes[0], "bad", frames_per_gap="1, 2, 3"), expect_success=False
    )
    assert "one count >= 0 per gap" in result.messages("execution_error")[0]["exception_message"]
