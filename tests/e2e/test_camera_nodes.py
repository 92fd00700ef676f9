"""Camera nodes in a real server (issue 4): golden equality with core WanCameraEmbedding, files only
inside ComfyUI's folders with clear errors, save/load round trips, orbit views, the tiny Fun-Camera
model detected and sampled through core WanCameraImageToVideo, and the preview picture."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from comfy_host import PromptError, webp_frame_count
from e2e_support import ARTIFACTS, load_workflow_as_tiny_prompt
from PIL import Image
from tiny_models import (
    TINY_FOLDER,
    WAN21_FUN_CAMERA_1_3B,
    WAN21_VAE,
    WAN22_FUN_CAMERA_HIGH_NOISE,
    provide_input_images,
)

from rtv.kernels.camera import CORE_PRESETS

pytestmark = pytest.mark.e2e

CAMERA_NODES = {
    "RTV_CameraTrajectory",
    "RTV_CameraKeyframes",
    "RTV_LoadCameraTrajectory",
    "RTV_SaveCameraTrajectory",
    "RTV_OrbitViews",
    "RTV_PluckerEmbedding",
    "RTV_TrajectoryPreview",
}
GOLDEN_TOLERANCE = {"atol": 1e-5, "rtol": 0}
FAST_STEPS = 3
PANELS_TOP = 0.09
"""Where the preview's panels start, as a fraction of its width (the header holds a colour legend)."""
WORKFLOW = ARTIFACTS.parent / "workflows" / "wan21_fun_camera_orbit.json"
TINY_CAMERA_UNET = f"{TINY_FOLDER}/{WAN21_FUN_CAMERA_1_3B}"
TINY_CAMERA_UNETS = {  # ComfyUI's model class for each (Wan 2.2's camera model reuses WAN21_Camera)
    "wan2.1": (TINY_CAMERA_UNET, "WAN21_Camera"),
    "wan2.2": (f"{TINY_FOLDER}/{WAN22_FUN_CAMERA_HIGH_NOISE}", "WAN21_Camera"),
}
TINY_VAE = f"{TINY_FOLDER}/{WAN21_VAE}"
KEYFRAMES = [
    {"frame": 0, "position": [0, 0, 0], "look_at": [0, 0, 3], "fov": 70},
    {"frame": 6, "position": [0.7, -0.3, 0.4], "look_at": [0, 0, 3]},
    {"frame": 12, "position": [1.4, -0.6, 1.6], "look_at": [0.2, 0, 3], "fov": 55},
]


def trajectory_node(
    preset="dolly_in", frames=9, amount=1.0, full_motion=True, intrinsics=(0.5, 0.5, 0.5, 0.5)
):
    fx, fy, cx, cy = intrinsics
    return {
        "class_type": "RTV_CameraTrajectory",
        "inputs": {
            "preset": preset,
            "frames": frames,
            "amount": amount,
            "fx": fx,
            "fy": fy,
            "cx": cx,
            "cy": cy,
            "full_motion": full_motion,
        },
    }


def plucker_node(trajectory, width, height, length, start_frame=0):
    return {
        "class_type": "RTV_PluckerEmbedding",
        "inputs": {
            "trajectory": trajectory,
            "width": width,
            "height": height,
            "start_frame": start_frame,
            "length": length,
        },
    }


def save_tensor_node(value, prefix):
    return {"class_type": "RTVTest_SaveTensor", "inputs": {"value": value, "filename_prefix": prefix}}


def save_trajectory_node(trajectory, prefix):
    return {
        "class_type": "RTV_SaveCameraTrajectory",
        "inputs": {"trajectory": trajectory, "filename_prefix": prefix},
    }


def load_node(file, frames=0):
    return {"class_type": "RTV_LoadCameraTrajectory", "inputs": {"file": file, "frames": frames}}


def saved_tensor(server, result, node_id) -> torch.Tensor:
    from safetensors.torch import load_file

    item = result.outputs[node_id]["tensors"][0]
    return load_file(str(server.output_dir / item["subfolder"] / item["filename"]))["tensor"]


def saved_trajectory_files(server, result, node_id) -> dict[str, str]:
    """{'.json': text, '.txt': text} written by a Save Camera Trajectory node."""
    names = result.text(node_id)[0].splitlines()
    return {name[name.rindex(".") :]: (server.output_dir / name).read_text() for name in names}


def rejection(server, prompt) -> str:
    """The node errors of a prompt the server refuses before running it, as one string."""
    with pytest.raises(PromptError) as refused:
        server.submit(prompt)
    return str(refused.value)


def test_camera_nodes_are_registered_with_tooltips_on_every_input(pack_nodes):
    assert CAMERA_NODES <= set(pack_nodes)
    for name in CAMERA_NODES:
        info = pack_nodes[name]
        assert info["display_name"].endswith("(RTV)") and info["category"] == "RealtimeVideo/camera"
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                assert spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"
    assert "CAMERA_TRAJECTORY" in pack_nodes["RTV_PluckerEmbedding"]["input"]["required"]["trajectory"][0]
    assert pack_nodes["RTV_PluckerEmbedding"]["output"][0] == "WAN_CAMERA_EMBEDDING"
    assert pack_nodes["RTV_SaveCameraTrajectory"]["output_node"]


# width, height, length, speed, intrinsics: lengths 1, 5 and 81; narrower and wider than 16:9.
GOLDEN_CASES = [
    pytest.param(32, 32, 1, 1.0, (0.5, 0.5, 0.5, 0.5), id="length-1"),
    pytest.param(96, 32, 5, 2.5, (0.4, 0.7, 0.45, 0.55), id="length-5-wide-off-centre"),
    pytest.param(64, 48, 81, 0.7, (0.6, 0.9, 0.5, 0.5), id="length-81-narrow"),
]


@pytest.mark.parametrize(("width", "height", "length", "speed", "intrinsics"), GOLDEN_CASES)
def test_every_core_preset_built_with_our_nodes_embeds_exactly_as_core(
    server, object_info, width, height, length, speed, intrinsics
):
    kind, options = object_info["WanCameraEmbedding"]["input"]["required"]["camera_pose"]
    core_presets = options["options"] if kind == "COMBO" else kind
    assert set(core_presets) == set(CORE_PRESETS)
    fx, fy, cx, cy = intrinsics
    prompt = {}
    for i, camera_pose in enumerate(core_presets):
        prompt[f"core{i}"] = {
            "class_type": "WanCameraEmbedding",
            "inputs": {
                "camera_pose": camera_pose,
                "width": width,
                "height": height,
                "length": length,
                "speed": speed,
                "fx": fx,
                "fy": fy,
                "cx": cx,
                "cy": cy,
            },
        }
        prompt[f"save_core{i}"] = save_tensor_node([f"core{i}", 0], f"golden/core{i}")
        prompt[f"traj{i}"] = trajectory_node(CORE_PRESETS[camera_pose], length, speed, False, intrinsics)
        prompt[f"ours{i}"] = plucker_node([f"traj{i}", 0], width, height, length)
        prompt[f"save_ours{i}"] = save_tensor_node([f"ours{i}", 0], f"golden/ours{i}")
    result = server.run(prompt)
    for i, camera_pose in enumerate(core_presets):
        expected, ours = (
            saved_tensor(server, result, f"save_core{i}"),
            saved_tensor(server, result, f"save_ours{i}"),
        )
        assert ours.shape == expected.shape == (1, 24, (length + 3) // 4, height, width), camera_pose
        assert ours.dtype == expected.dtype == torch.float32
        torch.testing.assert_close(ours, expected, **GOLDEN_TOLERANCE, msg=camera_pose)


def test_wan_lengths_and_sizes_are_checked_with_the_values_to_use(server):
    def plucker_graph(**overrides):
        args = {"width": 64, "height": 48, "length": 9, **overrides}
        return {
            "1": trajectory_node(frames=81),
            "2": plucker_node(["1", 0], **args),
            "3": save_tensor_node(["2", 0], "camera/errors"),
        }

    message = rejection(server, plucker_graph(length=80))
    assert "4k+1" in message and "use 77 or 81" in message
    message = rejection(server, plucker_graph(width=72))
    assert "multiple of 16" in message and "use 64 or 80" in message

    result = server.run(
        {
            "1": trajectory_node(frames=33),
            "2": plucker_node(["1", 0], 64, 48, 9, start_frame=28),
            "3": save_tensor_node(["2", 0], "camera/errors"),
        },
        expect_success=False,
    )
    error = result.messages("execution_error")[0]["exception_message"]
    assert "33 frames" in error and "start_frame 28 + length 9" in error


def test_paths_that_leave_the_input_or_output_folder_are_rejected(server):
    for file in ("../outside.json", "cameras/../../outside.txt", "/etc/passwd.txt"):
        message = rejection(server, {"1": load_node(file), "2": save_trajectory_node(["1", 0], "camera/t")})
        assert "input folder" in message and "Traceback" not in message, message
    for prefix in ("../escaped/trajectory", "camera/../../escaped", "/tmp/rtv-escaped/trajectory"):
        message = rejection(server, {"1": trajectory_node(), "2": save_trajectory_node(["1", 0], prefix)})
        assert "output folder" in message and "Traceback" not in message, message
    assert not (server.workdir / "escaped").exists()


MALFORMED_FILES = {
    "bad_json.json": ('{"format": "rtv-camera-trajectory", "version": 1,', "not valid JSON"),
    "foreign.json": ('{"poses": []}', "not a camera trajectory file"),
    "short_line.txt": ("https://example.com/clip\n0 0.5 0.5 0.5 0.5 0 0 1 0 0\n", "expected 19 numbers"),
    "scaled.txt": ("0 0.5 0.5 0.5 0.5 0 0 2 0 0 0 0 2 0 0 0 0 2 0\n", "not rigid"),
    "words.txt": ("https://example.com/clip\n0 fx fy cx cy 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n", "got text"),
    "no_poses.txt": ("https://example.com/clip\n", "no pose lines"),
}


@pytest.mark.parametrize("name", list(MALFORMED_FILES))
def test_malformed_trajectory_files_give_a_clear_error_before_running(server, name):
    text, expected = MALFORMED_FILES[name]
    folder = server.workdir / "input" / "malformed"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    message = rejection(
        server, {"1": load_node(f"malformed/{name}"), "2": save_trajectory_node(["1", 0], "x")}
    )
    assert expected in message and f"malformed/{name}" in message and "Traceback" not in message, message


def pose_numbers(text: str) -> list[list[float]]:
    """The numbers of a RealEstate10K file's pose lines (so -0.000000000 equals 0.000000000)."""
    return [[float(value) for value in line.split()] for line in text.splitlines()[1:]]


def test_save_then_load_gives_the_same_trajectory(server):
    keyframes = {
        "class_type": "RTV_CameraKeyframes",
        "inputs": {"keyframes": json.dumps(KEYFRAMES), "frames": 13},
    }
    first = server.run({"1": keyframes, "2": save_trajectory_node(["1", 0], "camera/roundtrip")})
    files = saved_trajectory_files(server, first, "2")
    cameras = server.workdir / "input" / "cameras"
    cameras.mkdir(parents=True, exist_ok=True)
    (cameras / "roundtrip.json").write_text(files[".json"])
    (cameras / "roundtrip.txt").write_text(files[".txt"])
    listed = server.get("/object_info/RTV_LoadCameraTrajectory")["RTV_LoadCameraTrajectory"]["input"][
        "required"
    ]
    kind, options = listed["file"]
    assert {"cameras/roundtrip.json", "cameras/roundtrip.txt"} <= set(options.get("options", kind))

    again = server.run(
        {
            "1": load_node("cameras/roundtrip.json"),
            "2": save_trajectory_node(["1", 0], "camera/again"),
            "3": load_node("cameras/roundtrip.txt"),
            "4": save_trajectory_node(["3", 0], "camera/txt"),
        }
    )
    original, from_json = (
        json.loads(files[".json"]),
        json.loads(saved_trajectory_files(server, again, "2")[".json"]),
    )
    from_txt = json.loads(saved_trajectory_files(server, again, "4")[".json"])
    assert from_json == original  # exact: JSON floats round-trip
    assert len(original["c2w"]) == 13
    assert pose_numbers(saved_trajectory_files(server, again, "4")[".txt"]) == pose_numbers(files[".txt"])
    torch.testing.assert_close(
        torch.tensor(from_txt["c2w"], dtype=torch.float64),
        torch.tensor(original["c2w"], dtype=torch.float64),
        atol=1e-8,
        rtol=0,
    )
    torch.testing.assert_close(
        torch.tensor(from_txt["intrinsics"], dtype=torch.float64),
        torch.tensor(original["intrinsics"], dtype=torch.float64),
        atol=1e-9,
        rtol=0,
    )


def test_a_loaded_file_can_be_resampled_to_a_wan_length(server):
    (server.workdir / "input" / "cameras").mkdir(parents=True, exist_ok=True)
    first = server.run(
        {"1": trajectory_node("orbit_left", 31), "2": save_trajectory_node(["1", 0], "camera/long")}
    )
    (server.workdir / "input" / "cameras" / "long.txt").write_text(
        saved_trajectory_files(server, first, "2")[".txt"]
    )
    result = server.run(
        {"1": load_node("cameras/long.txt", frames=81), "2": save_trajectory_node(["1", 0], "c/r")}
    )
    data = json.loads(saved_trajectory_files(server, result, "2")[".json"])
    assert len(data["c2w"]) == 81 and data["fps"] == pytest.approx(16.0 * 80 / 30)


def test_orbit_views_sit_at_the_radius_and_elevation_in_sv4d_order(server):
    orbit = {
        "class_type": "RTV_OrbitViews",
        "inputs": {
            "views": 8,
            "elevation_deg": 10.0,
            "start_azimuth_deg": 0.0,
            "radius": 2.0,
            "order": "sv4d",
        },
    }
    result = server.run(
        {
            "1": orbit,
            "2": save_trajectory_node(["1", 0], "camera/orbit"),
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
            "4": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}},
        }
    )
    elevations = [float(v) for v in result.text("3")[0].split(",")]
    azimuths = [float(v) for v in result.text("4")[0].split(",")]
    assert elevations == [10.0] * 8
    assert azimuths == [45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0, 0.0]  # the input view last
    c2w = torch.tensor(
        json.loads(saved_trajectory_files(server, result, "2")[".json"])["c2w"], dtype=torch.float64
    )
    positions = c2w[:, :3, 3]
    torch.testing.assert_close(positions.norm(dim=-1), torch.full((8,), 2.0, dtype=c2w.dtype))
    elevation = torch.rad2deg(torch.asin(-positions[:, 1] / 2.0))  # y is down: above the object is -y
    torch.testing.assert_close(elevation, torch.full((8,), 10.0, dtype=c2w.dtype))
    forward = c2w[:, :3, 2]
    torch.testing.assert_close(forward, -positions / 2.0)  # every view looks at the object


def fun_camera_graph(trajectory: dict, steps: int = 2, unet: str = TINY_CAMERA_UNET) -> dict:
    """Tiny Fun-Camera model sampled through core WanCameraImageToVideo, latent saved."""
    return {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {"unet_name": unet, "weight_dtype": "default"},
        },
        "2": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a house", "tokens": 512}},
        "3": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": TINY_VAE}},
        "5": trajectory,
        "6": plucker_node(["5", 0], 64, 48, 9),
        "7": {
            "class_type": "WanCameraImageToVideo",
            "inputs": {
                "positive": ["2", 0],
                "negative": ["3", 0],
                "vae": ["4", 0],
                "width": ["6", 1],
                "height": ["6", 2],
                "length": ["6", 3],
                "batch_size": 1,
                "camera_conditions": ["6", 0],
            },
        },
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["7", 0],
                "negative": ["7", 1],
                "latent_image": ["7", 2],
                "seed": 5,
                "steps": steps,
                "cfg": 3.0,
                "sampler_name": "euler",
                "scheduler": "simple",
                "denoise": 1.0,
            },
        },
        "9": {
            "class_type": "SaveLatent",
            "inputs": {"samples": ["8", 0], "filename_prefix": "camera/latent"},
        },
    }


def sampled_latent(server, result) -> torch.Tensor:
    from safetensors.torch import load_file

    item = result.outputs["9"]["latents"][0]
    return load_file(str(server.output_dir / item["subfolder"] / item["filename"]))["latent_tensor"]


@pytest.mark.parametrize("version", list(TINY_CAMERA_UNETS))
def test_tiny_fun_camera_model_is_a_camera_model_and_the_embedding_steers_it(server, version):
    """Wan 2.1 Fun-Camera 1.3B and Wan 2.2 Fun-Camera A14B take the same embedding through core nodes."""
    unet, model_class = TINY_CAMERA_UNETS[version]
    log_start = len(server.log_path.read_text())
    static = sampled_latent(server, server.run(fun_camera_graph(trajectory_node("static", 9), unet=unet)))
    assert f"Requested to load {model_class}" in server.log_path.read_text()[log_start:]
    orbit = sampled_latent(server, server.run(fun_camera_graph(trajectory_node("orbit_left", 9), unet=unet)))
    assert static.shape == orbit.shape == (1, 16, 3, 6, 8)
    # The camera adapter adds the embedding to the patch tokens: a different move, a different video.
    assert (orbit - static).abs().max() > 1e-3 * static.abs().max()


def preview_pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def coloured_pixels(pixels: np.ndarray) -> int:
    """Pixels of the path/frusta ramp (saturated), as opposed to the grey page, grid and text."""
    return int(((pixels.max(-1) - pixels.min(-1)) > 80).sum())


def test_shipped_fun_camera_workflow_runs_end_to_end_and_previews_the_path(server, object_info):
    prompt = load_workflow_as_tiny_prompt(WORKFLOW, object_info)
    assert {
        "RTV_CameraTrajectory",
        "RTV_PluckerEmbedding",
        "WanCameraImageToVideo",
        "KSampler",
        "RTV_TrajectoryPreview",
        "PreviewImage",
    } <= {n["class_type"] for n in prompt.values()}
    for node in prompt.values():
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = FAST_STEPS  # the browser test runs the shipped 20 steps
    provide_input_images(prompt, server.workdir / "input")
    log_start = len(server.log_path.read_text())
    result = server.run(prompt)
    assert "Requested to load WAN21_Camera" in server.log_path.read_text()[log_start:]

    save_id = next(nid for nid, n in prompt.items() if n["class_type"] == "SaveAnimatedWEBP")
    frames = next(n["inputs"]["length"] for n in prompt.values() if n["class_type"] == "RTV_PluckerEmbedding")
    assert webp_frame_count(result.files(save_id)[0]) == frames

    preview_id = next(nid for nid, n in prompt.items() if n["class_type"] == "RTV_TrajectoryPreview")
    picture = result.files(preview_id)[0]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(picture, ARTIFACTS / "camera_preview_orbit_left.png")
    pixels = preview_pixels(picture)
    assert pixels.shape[1] == 1536 and pixels.std() > 10  # not blank
    assert coloured_pixels(pixels) > 2000  # the path and frusta are drawn


@pytest.mark.parametrize("preset", ["static", "dolly_in", "pan_left", "roll_cw", "zoom_in"])
def test_preview_draws_every_kind_of_move(server, preset):
    result = server.run(
        {
            "1": trajectory_node(preset, 81),
            "2": {"class_type": "RTV_TrajectoryPreview", "inputs": {"trajectory": ["1", 0]}},
        }
    )
    picture = result.files("2")[0]
    shutil.copy(picture, ARTIFACTS / f"camera_preview_{preset}.png")
    panels = preview_pixels(picture)[round(PANELS_TOP * 1536) :]  # below the header and its colour legend
    assert coloured_pixels(panels) > 1000, preset
    # The last camera (orange end of the colour ramp) is drawn, and so is the first (blue end) where
    # the last one does not cover it.
    orange = ((panels[..., 0] > 190) & (panels[..., 2] < 80)).sum()
    blue = ((panels[..., 2] > 150) & (panels[..., 0] < 90)).sum()
    assert orange > 50 and (preset == "static" or blue > 50), (preset, blue, orange)


def test_camera_move_units_match_core_for_the_same_preset(server):
    # Pan at amount 1 moves 1.5 units sideways over the whole clip with full_motion on (core: 80/81 of it).
    result = server.run(
        {
            "1": trajectory_node("pan_left", 81, full_motion=True),
            "2": save_trajectory_node(["1", 0], "camera/pan"),
        }
    )
    c2w = json.loads(saved_trajectory_files(server, result, "2")[".json"])["c2w"]
    assert math.isclose(c2w[-1][0][3], -1.5, abs_tol=1e-12)
