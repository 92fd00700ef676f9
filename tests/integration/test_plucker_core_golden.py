"""Golden test: our poses + our Wan layout reproduce core WanCameraEmbedding's tensor.

Core's node is imported in process (tests/integration/conftest.py puts ComfyUI on sys.path and
selects the CPU). The module imports ComfyUI's ``nodes`` (for MAX_RESOLUTION), which imports most
of ComfyUI: about 10 s on a loaded 2-core machine, shared with other in-process tests.
"""

from __future__ import annotations

import pytest
import torch
from comfy_extras import nodes_camera_trajectory

from rtv.kernels.camera import CORE_PRESETS, core_wan_trajectory
from rtv.kernels.plucker import wan_camera_embedding

GOLDEN_TOLERANCE = {"atol": 1e-5, "rtol": 0}

CASES = [
    # width, height, length, speed, (fx, fy, cx, cy)
    pytest.param(64, 48, 9, 1.0, (0.5, 0.5, 0.5, 0.5), id="narrower-than-16:9"),
    pytest.param(96, 32, 5, 2.5, (0.4, 0.7, 0.45, 0.55), id="wider-than-16:9-off-centre"),
    pytest.param(64, 36, 13, 0.7, (0.6, 0.9, 0.5, 0.5), id="exactly-16:9"),
    pytest.param(32, 32, 1, 0.0, (0.5, 0.5, 0.5, 0.5), id="one-frame-speed-0"),
]


def core_embedding(
    camera_pose: str, width: int, height: int, length: int, speed: float, intrinsics
) -> torch.Tensor:
    output = nodes_camera_trajectory.WanCameraEmbedding.execute(
        camera_pose, width, height, length, speed, *intrinsics
    )
    embedding, out_width, out_height, out_length = output.args  # a V3 node returns io.NodeOutput
    assert (out_width, out_height, out_length) == (width, height, length)
    return embedding


@pytest.mark.parametrize("camera_pose", list(CORE_PRESETS))
@pytest.mark.parametrize(("width", "height", "length", "speed", "intrinsics"), CASES)
def test_core_presets_embed_identically(camera_pose, width, height, length, speed, intrinsics):
    expected = core_embedding(camera_pose, width, height, length, speed, intrinsics)
    ours = wan_camera_embedding(core_wan_trajectory(camera_pose, length, speed, *intrinsics), width, height)
    assert ours.shape == expected.shape == (1, 24, (length + 3) // 4, height, width)
    assert ours.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(ours, expected, **GOLDEN_TOLERANCE)


@pytest.mark.parametrize("camera_pose", ["Pan Left", "ClockWise (CW)"])
def test_a_slice_of_a_long_move_embeds_like_cores_short_clip_at_the_same_velocity(camera_pose):
    # Core's move advances speed/length per frame; frames [4, 13) of a 17-frame clip, rebased, are
    # the first 9 frames of a 9-frame clip whose speed is scaled by 9/17.
    long_move = core_wan_trajectory(camera_pose, 17, 1.0)
    ours = wan_camera_embedding(long_move.slice(4, 13), 48, 32)
    expected = core_embedding(camera_pose, 48, 32, 9, 9 / 17, (0.5, 0.5, 0.5, 0.5))
    torch.testing.assert_close(ours, expected, **GOLDEN_TOLERANCE)
