"""Camera nodes: build, load, save and look at camera trajectories, and embed them as Plücker rays
for Wan Fun-Camera models (core WanCameraImageToVideo).

The math lives in kernels/camera.py (trajectories, presets, keyframes, pose files, orbits),
kernels/plucker.py (rays, Wan layout) and kernels/trajectory_preview.py (the picture); this module
declares the nodes, keeps files inside ComfyUI's input/output folders and turns every problem into
a message that says what to change.
"""

from __future__ import annotations

import hashlib
import json
import os

import folder_paths
import torch
from comfy_api.latest import io, ui

from ..kernels.camera import (
    CORE_DEFAULT_INTRINSICS,
    DEFAULT_ORBIT_DISTANCE,
    FULL_TURN_DEG,
    PRESETS,
    CameraTrajectory,
    format_realestate10k,
    keyframes_from_dicts,
    orbit_trajectory,
    parse_realestate10k,
    preset_trajectory,
    sv3d_orbit_angles,
    sv4d_orbit_angles,
    trajectory_from_keyframes,
)
from ..kernels.plucker import check_wan_length, wan_camera_embedding
from ..kernels.trajectory_preview import (
    DEFAULT_FRUSTA,
    DEFAULT_WIDTH,
    MAX_WIDTH,
    MIN_WIDTH,
    render_trajectory_preview,
)

CameraTrajectoryType = io.Custom("CAMERA_TRAJECTORY")
CATEGORY = "RealtimeVideo/camera"
PREFIX = "[RTV]"

MAX_FRAMES = 4096
MAX_RESOLUTION = 16384  # ComfyUI's nodes.MAX_RESOLUTION (not imported: that module is heavy)
WAN_SIZE_MULTIPLE = 16
"""Wan's VAE (8x) and patch size (2x): the camera adapter needs width and height in steps of 16."""
MAX_AMOUNT = 10.0
MAX_FOCAL = 10.0
MIN_FOCAL = 0.05
MAX_RADIUS = 1000.0
MAX_VIEWS = 360
MAX_ELEVATION_DEG = 89.0  # at +-90 degrees "upright" is undefined for a look-at camera

TRAJECTORY_FILE_EXTENSIONS = (".json", ".txt")
MAX_LISTED_FOLDERS = 500
SAVE_DEFAULT_PREFIX = "camera/trajectory"

DEFAULT_KEYFRAMES = """[
  {"frame": 0, "position": [0, 0, 0], "look_at": [0, 0, 3], "fov": 70},
  {"frame": 40, "position": [1.2, -0.4, 0.8], "look_at": [0, 0, 3]},
  {"frame": 80, "position": [2.2, -0.8, 2.4], "look_at": [0, 0, 3], "fov": 55}
]"""

INTRINSICS_TOOLTIP = (
    "as a fraction of the image {}, core WanCameraEmbedding's convention: the values belong to a 16:9 "
    "(1280x720) frame and other aspects are centre-cropped from it. "
)
ORBIT_ORDERS = ("sv4d", "sv3d")


def _problem(message: str) -> ValueError:
    return ValueError(f"{PREFIX} {message}")


def _validation_result(build, *args) -> bool | str:
    """Run a node's own checks on literal widget values before the graph runs (linked inputs arrive
    as None and are checked in execute): True, or the message the UI shows on the node."""
    if any(arg is None for arg in args):
        return True
    try:
        build(*args)
    except ValueError as error:
        return str(error)
    return True


# ------------------------------------------------------------------------------------ files


def inside_folder(root: str, relative: str, what: str, folder_name: str) -> str:
    """Absolute path of ``relative`` under ``root``; a ValueError for a path that leaves it (an
    absolute path, a drive, ``..``), since nodes may only read and write ComfyUI's own folders."""
    root = os.path.abspath(root)
    if not relative or not relative.strip():
        raise _problem(f"{what} is empty; give a path inside ComfyUI's {folder_name} folder")
    if os.path.isabs(relative) or os.path.splitdrive(relative)[0]:
        raise _problem(
            f"{what} {relative!r} is an absolute path; give a path relative to ComfyUI's {folder_name} folder"
        )
    full = os.path.abspath(os.path.join(root, relative))
    if os.path.commonpath([root, full]) != root:
        raise _problem(
            f"{what} {relative!r} leaves ComfyUI's {folder_name} folder; remove the '..' parts "
            f"(subfolders inside the {folder_name} folder are fine)"
        )
    return full


def trajectory_files() -> list[str]:
    """Trajectory files (.json, .txt) under ComfyUI's input folder and its subfolders, as relative
    '/' paths. Hidden folders are skipped, and the walk stops after MAX_LISTED_FOLDERS folders: the
    list is rebuilt whenever the UI asks for node definitions, and input folders can be huge."""
    root = folder_paths.get_input_directory()
    names = []
    for visited, (folder, subfolders, files) in enumerate(os.walk(root)):
        if visited >= MAX_LISTED_FOLDERS:
            break
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        relative = os.path.relpath(folder, root)
        for name in files:
            if name.lower().endswith(TRAJECTORY_FILE_EXTENSIONS) and not name.startswith("."):
                path = name if relative == os.curdir else os.path.join(relative, name)
                names.append(path.replace(os.sep, "/"))
    return sorted(names)


def read_trajectory_file(file: str) -> CameraTrajectory:
    """The trajectory in ``file`` (relative to the input folder): the pack's JSON, or a
    RealEstate10K/CameraCtrl pose file (.txt, world-to-camera rows, 1280x720 intrinsics)."""
    path = inside_folder(folder_paths.get_input_directory(), file, "file", "input")
    if not file.lower().endswith(TRAJECTORY_FILE_EXTENSIONS):
        raise _problem(
            f"{file!r} is not a trajectory file: use a .json saved by Save Camera Trajectory (RTV) "
            "or a RealEstate10K/CameraCtrl .txt pose file"
        )
    if not os.path.isfile(path):
        raise _problem(f"no file {file!r} in ComfyUI's input folder; put it there or pick another")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise _problem(f"{file} is not a text file (expected JSON or RealEstate10K lines)") from None
    try:
        if file.lower().endswith(".json"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
                ) from None
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object written by Save Camera Trajectory (RTV)")
            return CameraTrajectory.from_dict(data)
        return parse_realestate10k(text).trajectory
    except (ValueError, TypeError) as error:
        raise _problem(f"{file}: {error}") from None


def _file_fingerprint(file: str) -> str:
    try:
        path = inside_folder(folder_paths.get_input_directory(), file, "file", "input")
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except (ValueError, OSError) as error:
        return f"unreadable: {error}"


def check_save_prefix(filename_prefix: str) -> None:
    inside_folder(folder_paths.get_output_directory(), filename_prefix, "filename_prefix", "output")


# ------------------------------------------------------------------------------------ nodes


class CameraTrajectoryPreset(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_CameraTrajectory",
            display_name="Camera Trajectory (RTV)",
            category=CATEGORY,
            description=(
                "A camera move from a preset, one pose per video frame, starting at the identity. With "
                "full_motion off and the same values this gives exactly the poses of core WanCameraEmbedding."
            ),
            inputs=[
                io.Combo.Input(
                    "preset",
                    options=list(PRESETS),
                    default="dolly_in",
                    tooltip="pan_*: move sideways/up/down without turning (core 'Pan'). dolly_*: move along "
                    "the view (core 'Zoom In/Out'). zoom_*: change the focal length, camera still. "
                    "orbit_*: circle a point ahead of the camera. yaw_*/tilt_*: turn in place. "
                    "roll_*: turn about the view axis (core 'ClockWise'/'Anti Clockwise').",
                ),
                io.Int.Input(
                    "frames",
                    default=81,
                    min=1,
                    max=MAX_FRAMES,
                    step=4,
                    tooltip="Poses (video frames). Wan videos have 4k+1 frames: 33, 49, 81, ...",
                ),
                io.Float.Input(
                    "amount",
                    default=1.0,
                    min=-MAX_AMOUNT,
                    max=MAX_AMOUNT,
                    step=0.05,
                    tooltip="Size of the move, like core's speed: 1 = 1.5 units sideways (pan), "
                    "3 units forward (dolly), 60 degrees (orbit, yaw, tilt, roll) or 2x "
                    "focal length (zoom). Negative reverses the move.",
                ),
                io.Float.Input(
                    "fx",
                    default=0.5,
                    min=MIN_FOCAL,
                    max=MAX_FOCAL,
                    step=0.01,
                    tooltip="Focal length "
                    + INTRINSICS_TOOLTIP.format("width")
                    + "0.5 = 90 degrees horizontal field of view.",
                ),
                io.Float.Input(
                    "fy",
                    default=0.5,
                    min=MIN_FOCAL,
                    max=MAX_FOCAL,
                    step=0.01,
                    tooltip="Focal length "
                    + INTRINSICS_TOOLTIP.format("height")
                    + "Square pixels at 16:9 need fy = fx * 16/9.",
                ),
                io.Float.Input(
                    "cx",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Principal point, fraction of the width (0.5 = centre).",
                ),
                io.Float.Input(
                    "cy",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Principal point, fraction of the height (0.5 = centre).",
                ),
                io.Boolean.Input(
                    "full_motion",
                    default=True,
                    tooltip="On: the last frame completes the whole move. Off: the last frame "
                    "stops at (frames-1)/frames of it, exactly as core WanCameraEmbedding.",
                ),
                io.Float.Input(
                    "orbit_distance",
                    default=DEFAULT_ORBIT_DISTANCE,
                    min=0.01,
                    max=MAX_RADIUS,
                    step=0.1,
                    optional=True,
                    tooltip="orbit_* only: distance from the camera to the point it circles, in "
                    "the same units as the moves (a dolly_in at amount 1 travels 3).",
                ),
            ],
            outputs=[CameraTrajectoryType.Output(display_name="trajectory")],
        )

    @classmethod
    def execute(
        cls,
        preset: str,
        frames: int,
        amount: float,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        full_motion: bool,
        orbit_distance: float = DEFAULT_ORBIT_DISTANCE,
    ) -> io.NodeOutput:
        try:
            trajectory = preset_trajectory(
                preset,
                frames,
                amount,
                full_motion=full_motion,
                intrinsics=(fx, fy, cx, cy),
                orbit_distance=orbit_distance,
            )
        except ValueError as error:
            raise _problem(str(error)) from None
        return io.NodeOutput(trajectory)


def _keyframe_trajectory(keyframes: str, frames: int) -> CameraTrajectory:
    try:
        items = json.loads(keyframes)
    except json.JSONDecodeError as error:
        raise _problem(
            f"keyframes are not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            'expected a list like [{"frame": 0, "position": [0, 0, 0], "look_at": [0, 0, 3]}]'
        ) from None
    try:
        return trajectory_from_keyframes(keyframes_from_dicts(items), frames if frames > 0 else None)
    except (ValueError, TypeError) as error:
        raise _problem(str(error)) from None


class CameraKeyframes(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_CameraKeyframes",
            display_name="Camera Keyframes (RTV)",
            category=CATEGORY,
            description=(
                "A camera path through keyframes: a smooth spline through the positions, slerp between "
                "orientations (or a look-at of a smoothly moving target), linear field of view. The "
                "camera holds still before the first and after the last keyframe."
            ),
            inputs=[
                io.String.Input(
                    "keyframes",
                    multiline=True,
                    default=DEFAULT_KEYFRAMES,
                    tooltip='JSON list of keyframes. Each: "frame" (0-based), "position" [x, y, z] and '
                    'either "look_at" [x, y, z] (a point to keep in the centre) or "rotation" '
                    "(euler degrees [x, y, z] or quaternion [w, x, y, z], camera-to-world); optional "
                    '"fov" (horizontal degrees, default 90). Axes as the first camera sees them: '
                    "x right, y DOWN, z forward; units as the presets (a pan moves 1.5).",
                ),
                io.Int.Input(
                    "frames",
                    default=81,
                    min=0,
                    max=MAX_FRAMES,
                    step=4,
                    tooltip="Poses (video frames), 4k+1 for Wan. 0 = up to the last keyframe.",
                ),
            ],
            outputs=[CameraTrajectoryType.Output(display_name="trajectory")],
        )

    @classmethod
    def validate_inputs(cls, keyframes: str | None = None, frames: int | None = None) -> bool | str:
        if frames is not None and not 0 <= frames <= MAX_FRAMES:
            return f"{PREFIX} frames must be between 0 and {MAX_FRAMES}, got {frames}"
        return _validation_result(_keyframe_trajectory, keyframes, frames)

    @classmethod
    def execute(cls, keyframes: str, frames: int) -> io.NodeOutput:
        return io.NodeOutput(_keyframe_trajectory(keyframes, frames))


def _loaded_trajectory(file: str, frames: int) -> CameraTrajectory:
    trajectory = read_trajectory_file(file)
    if frames > 0 and frames != len(trajectory):
        trajectory = trajectory.resample(frames)
    return trajectory


class LoadCameraTrajectory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = trajectory_files()
        return io.Schema(
            node_id="RTV_LoadCameraTrajectory",
            display_name="Load Camera Trajectory (RTV)",
            category=CATEGORY,
            description=(
                "Reads a camera trajectory from ComfyUI's input folder: a RealEstate10K / CameraCtrl pose "
                "file (.txt: a URL line, then 'timestamp fx fy cx cy 0 0' and a 3x4 world-to-camera matrix "
                "per frame) or a .json written by Save Camera Trajectory (RTV)."
            ),
            inputs=[
                io.Combo.Input(
                    "file",
                    options=files,
                    default=files[0] if files else None,
                    tooltip="A .txt or .json file in ComfyUI's input folder (subfolders are "
                    "listed too). Refresh the page after adding files.",
                ),
                io.Int.Input(
                    "frames",
                    default=0,
                    min=0,
                    max=MAX_FRAMES,
                    step=4,
                    optional=True,
                    tooltip="0 = every pose of the file. n: the same move resampled to n frames "
                    "(e.g. 81 for Wan; the fps changes so the duration stays).",
                ),
            ],
            outputs=[CameraTrajectoryType.Output(display_name="trajectory")],
        )

    @classmethod
    def validate_inputs(cls, file: str | None = None, frames: int | None = 0) -> bool | str:
        if frames is not None and not 0 <= frames <= MAX_FRAMES:
            return f"{PREFIX} frames must be between 0 and {MAX_FRAMES}, got {frames}"
        return _validation_result(_loaded_trajectory, file, frames or 0)

    @classmethod
    def fingerprint_inputs(cls, file: str, frames: int = 0) -> str:
        return f"{_file_fingerprint(file)}:{frames}"

    @classmethod
    def execute(cls, file: str, frames: int = 0) -> io.NodeOutput:
        return io.NodeOutput(_loaded_trajectory(file, frames))


class SaveCameraTrajectory(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_SaveCameraTrajectory",
            display_name="Save Camera Trajectory (RTV)",
            category=CATEGORY,
            description=(
                "Writes a trajectory to ComfyUI's output folder twice: the pack's .json (exact, reloads "
                "identically) and a RealEstate10K / CameraCtrl .txt (world-to-camera rows, 9 decimals)."
            ),
            inputs=[
                CameraTrajectoryType.Input("trajectory", tooltip="The camera trajectory to save."),
                io.String.Input(
                    "filename_prefix",
                    default=SAVE_DEFAULT_PREFIX,
                    tooltip="File name start, relative to ComfyUI's output folder; subfolders "
                    "are fine, leaving the folder is not. A counter is added: "
                    "trajectory_00001_.json and .txt.",
                ),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix: str | None = None) -> bool | str:
        return _validation_result(check_save_prefix, filename_prefix)

    @classmethod
    def execute(cls, trajectory: CameraTrajectory, filename_prefix: str) -> io.NodeOutput:
        check_save_prefix(filename_prefix)
        output = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output)
        stem = f"{name}_{counter:05}_"
        files = {
            f"{stem}.json": json.dumps(trajectory.to_dict(), indent=1) + "\n",
            f"{stem}.txt": format_realestate10k(trajectory),
        }
        for file_name, text in files.items():
            with open(os.path.join(folder, file_name), "w", encoding="utf-8") as handle:
                handle.write(text)
        saved = [os.path.join(subfolder, file_name).replace(os.sep, "/") for file_name in files]
        return io.NodeOutput(ui=ui.PreviewText("\n".join(saved)))


def _angle_list(values: list[float]) -> str:
    return ", ".join(f"{value:.6g}" for value in values)


class OrbitViews(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_OrbitViews",
            display_name="Orbit Views (RTV)",
            category=CATEGORY,
            description=(
                "Cameras on a circle around an object at the origin, all looking at it and upright, as "
                "SV3D / SV4D render their novel views: one pose per view, in the model's view order."
            ),
            inputs=[
                io.Int.Input(
                    "views",
                    default=8,
                    min=1,
                    max=MAX_VIEWS,
                    tooltip="Number of views (SV4D samples 21, SV3D 21 frames).",
                ),
                io.Float.Input(
                    "elevation_deg",
                    default=10.0,
                    min=-MAX_ELEVATION_DEG,
                    max=MAX_ELEVATION_DEG,
                    step=0.5,
                    tooltip="Height of the cameras: degrees above (+) or below (-) "
                    "the object's horizon. Same for every view.",
                ),
                io.Float.Input(
                    "start_azimuth_deg",
                    default=0.0,
                    min=-360.0,
                    max=360.0,
                    step=1.0,
                    tooltip="Azimuth added to every view; 0 = the input view (camera in front "
                    "of the object). Azimuth grows counter-clockwise seen from above.",
                ),
                io.Float.Input(
                    "radius",
                    default=DEFAULT_ORBIT_DISTANCE,
                    min=0.01,
                    max=MAX_RADIUS,
                    step=0.1,
                    tooltip="Distance from each camera to the object's centre (world units).",
                ),
                io.Combo.Input(
                    "order",
                    options=list(ORBIT_ORDERS),
                    default="sv4d",
                    optional=True,
                    tooltip="sv4d: azimuths 360/views, 2*360/views, ..., 360 = 0 (the input "
                    "view last), as SV4D's sampling script. sv3d: 0, 360/(views-1), ..., "
                    "360 (the circle closes), as core SV3D_Conditioning. Both shifted "
                    "by start_azimuth_deg.",
                ),
            ],
            outputs=[
                CameraTrajectoryType.Output(
                    display_name="trajectory", tooltip="One pose per view, in the order of the lists."
                ),
                io.String.Output(
                    display_name="elevations",
                    tooltip="Elevation of every view in degrees, comma separated, in view "
                    "order: paste or wire into SV3D/SV4D nodes that take per-view "
                    "lists (core SV3D_Conditioning takes the single elevation_deg).",
                ),
                io.String.Output(
                    display_name="azimuths",
                    tooltip="Azimuth of every view in degrees (0-360), comma separated, in view "
                    "order, matching the elevations.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls, views: int, elevation_deg: float, start_azimuth_deg: float, radius: float, order: str = "sv4d"
    ) -> io.NodeOutput:
        if order not in ORBIT_ORDERS:
            raise _problem(f"order must be one of {', '.join(ORBIT_ORDERS)}, got {order!r}")
        if order == "sv3d":
            elevations, azimuths = sv3d_orbit_angles(views, elevation_deg, start_azimuth_deg)
        else:
            elevations, azimuths = sv4d_orbit_angles(views, elevation_deg)
            azimuths = [(azimuth + start_azimuth_deg) % FULL_TURN_DEG for azimuth in azimuths]
        try:
            trajectory = orbit_trajectory(elevations, azimuths, radius, intrinsics=CORE_DEFAULT_INTRINSICS)
        except ValueError as error:
            raise _problem(str(error)) from None
        return io.NodeOutput(trajectory, _angle_list(elevations), _angle_list(azimuths))


def check_embedding_request(width: int, height: int, start_frame: int, length: int) -> None:
    """Sizes and lengths a Wan Fun-Camera model can take, with the values to use instead."""
    for name, value in (("width", width), ("height", height)):
        if not WAN_SIZE_MULTIPLE <= value <= MAX_RESOLUTION or value % WAN_SIZE_MULTIPLE:
            lower = max(WAN_SIZE_MULTIPLE, value - value % WAN_SIZE_MULTIPLE)
            raise _problem(
                f"{name} must be a multiple of {WAN_SIZE_MULTIPLE} between {WAN_SIZE_MULTIPLE} and "
                f"{MAX_RESOLUTION} (Wan's VAE and patches); got {value}: use {lower} or {lower + WAN_SIZE_MULTIPLE}"
            )
    if start_frame < 0:
        raise _problem(f"start_frame must be >= 0, got {start_frame}")
    if length > MAX_FRAMES:
        raise _problem(f"length must be at most {MAX_FRAMES}, got {length}")
    try:
        check_wan_length(length)
    except ValueError as error:
        raise _problem(f"length: {error}") from None


class PluckerEmbedding(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_PluckerEmbedding",
            display_name="Plücker Camera Embedding (RTV)",
            category=CATEGORY,
            description=(
                "Plücker rays of a trajectory window in the layout of core WanCameraEmbedding, for "
                "WanCameraImageToVideo and Wan Fun-Camera models. Poses are taken relative to the "
                "window's first frame, so a long trajectory can be embedded window by window."
            ),
            inputs=[
                CameraTrajectoryType.Input(
                    "trajectory", tooltip="The camera path, one pose per video frame."
                ),
                io.Int.Input(
                    "width",
                    default=832,
                    min=WAN_SIZE_MULTIPLE,
                    max=MAX_RESOLUTION,
                    step=WAN_SIZE_MULTIPLE,
                    tooltip="Video width in pixels (multiple of 16); wire the same into "
                    "WanCameraImageToVideo (this node passes it on).",
                ),
                io.Int.Input(
                    "height",
                    default=480,
                    min=WAN_SIZE_MULTIPLE,
                    max=MAX_RESOLUTION,
                    step=WAN_SIZE_MULTIPLE,
                    tooltip="Video height in pixels (multiple of 16).",
                ),
                io.Int.Input(
                    "start_frame",
                    default=0,
                    min=0,
                    max=MAX_FRAMES,
                    tooltip="First trajectory frame of the window (e.g. a chunk's global frame).",
                ),
                io.Int.Input(
                    "length",
                    default=81,
                    min=1,
                    max=MAX_FRAMES,
                    step=4,
                    tooltip="Frames in the window: 4k+1 (1, 5, ..., 81), the video length.",
                ),
            ],
            outputs=[
                io.WanCameraEmbedding.Output(
                    display_name="camera_embedding", tooltip="[1, 24, (length+3)/4, height, width] float32."
                ),
                io.Int.Output(display_name="width"),
                io.Int.Output(display_name="height"),
                io.Int.Output(display_name="length"),
            ],
        )

    @classmethod
    def validate_inputs(
        cls,
        width: int | None = None,
        height: int | None = None,
        start_frame: int | None = None,
        length: int | None = None,
    ) -> bool | str:
        return _validation_result(check_embedding_request, width, height, start_frame, length)

    @classmethod
    def execute(
        cls, trajectory: CameraTrajectory, width: int, height: int, start_frame: int, length: int
    ) -> io.NodeOutput:
        check_embedding_request(width, height, start_frame, length)
        frames = len(trajectory)
        if start_frame + length > frames:
            raise _problem(
                f"the trajectory has {frames} frames but start_frame {start_frame} + length {length} needs "
                f"{start_frame + length}; lower start_frame or length, or give the trajectory more frames"
            )
        window = trajectory.slice(start_frame, start_frame + length)
        embedding = wan_camera_embedding(window, width, height)
        return io.NodeOutput(embedding, width, height, length)


class TrajectoryPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RTV_TrajectoryPreview",
            display_name="Camera Trajectory Preview (RTV)",
            category=CATEGORY,
            description=(
                "Draws the camera path with frusta and frame numbers from above, from the side and from "
                "behind, relative to the first camera, so you can check a move before rendering."
            ),
            inputs=[
                CameraTrajectoryType.Input("trajectory", tooltip="The camera path to draw."),
                io.Int.Input(
                    "preview_width",
                    default=DEFAULT_WIDTH,
                    min=MIN_WIDTH,
                    max=MAX_WIDTH,
                    step=64,
                    optional=True,
                    tooltip="Picture width in pixels (height is about 0.4 x width).",
                ),
                io.Int.Input(
                    "frusta",
                    default=DEFAULT_FRUSTA,
                    min=1,
                    max=64,
                    optional=True,
                    tooltip="Cameras drawn along the path, first and last included, each with "
                    "its frame number.",
                ),
            ],
            outputs=[io.Image.Output(display_name="image")],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls, trajectory: CameraTrajectory, preview_width: int = DEFAULT_WIDTH, frusta: int = DEFAULT_FRUSTA
    ) -> io.NodeOutput:
        picture = render_trajectory_preview(trajectory, preview_width, frusta=frusta)[None].to(torch.float32)
        return io.NodeOutput(picture, ui=ui.PreviewImage(picture, cls=cls))


NODES = [
    CameraTrajectoryPreset,
    CameraKeyframes,
    LoadCameraTrajectory,
    SaveCameraTrajectory,
    OrbitViews,
    PluckerEmbedding,
    TrajectoryPreview,
]
