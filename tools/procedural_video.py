"""Deterministic procedural videos for the reference model: textured shapes over textured ground.

Each clip has a prompt class (kernels/reference_prompts.py) that fixes its main object's colour,
shape and motion; the seed decides everything else: the object's texture, size, start position and
speed, up to three distractor shapes (other colours, moving and rotating freely, entering and leaving
the frame, some in front of the main object so they occlude it), the textured background, and a
camera pan and zoom applied to the whole scene. That gives attention something real to do: follow
an object through motion, rotation and occlusion (semantic correspondence) on top of the positional
structure of a panning, zooming scene.

Geometry lives in world units where the frame height is 1 at zoom 1; the camera maps world to
image as ``image = (world - centre(t)) * zoom(t)``. Motions are per frame, so a longer clip
continues the same motion. Parameters are drawn on the CPU from one generator per seed (the same
clip on any device and in any batch); rendering is batched torch on whatever device is given.

    frames = generate_clips([0, 3], seeds=[1, 2])          # (2, 33, 96, 128, 3) float32 in [0, 1]
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_import import load_pack  # noqa: E402

load_pack("rtv")
from rtv.kernels.reference_prompts import COLOURS, DIRECTIONS, PROMPT_CLASSES, ROTATES, SHAPES  # noqa: E402

DEFAULT_FRAMES = 33
"""4k + 1 frames (Wan's VAE: 9 latent frames), the training clip length."""
DEFAULT_HEIGHT = 96
DEFAULT_WIDTH = 128
"""Multiples of 16 (VAE 8x, patch 2x): 6 x 8 tokens per latent frame; the test host's resolution."""

SHAPE_IDS = {name: i for i, name in enumerate((*SHAPES, "cross"))}
"""Distractors may also be crosses; main objects are only the prompt shapes."""
DISTRACTOR_COLOURS = ((0.10, 0.80, 0.85), (0.85, 0.15, 0.80), (0.92, 0.92, 0.92), (0.10, 0.09, 0.08))
"""Cyan, magenta, white, near black: at least 45 degrees of hue from every class colour (or grey),
so the class colour always identifies the main object."""
MAX_DISTRACTORS = 3
OBJECTS = 1 + MAX_DISTRACTORS

MAIN_RADIUS = (0.14, 0.19)
"""Equal-area radius of the main object, in frame heights: 13-18 px at 96 px, 1.7-2.3 latent pixels."""
MAIN_SPEED = (0.013, 0.018)
"""Frame heights per frame: 0.42-0.58 of the height over a 33-frame clip."""
MAIN_SPIN = 0.01
"""Largest idle rotation of a travelling main object, rad per frame."""
ROTATION_SPEED = (0.03, 0.045)
"""Spin of a 'rotates' object, rad per frame (55-85 degrees over 33 frames)."""
DISTRACTOR_RADIUS = (0.05, 0.11)
DISTRACTOR_SPEED = (0.006, 0.03)
DISTRACTOR_SPIN = 0.06
DISTRACTOR_PRESENT = 0.8
DISTRACTOR_ENTERS = 0.4
"""Chance that a distractor starts outside the frame and moves in (others may leave it)."""
DISTRACTOR_IN_FRONT = 0.45
DISTRACTOR_CROSSES = 0.6
"""Chance that the first distractor is aimed to meet the main object mid-clip."""
CAMERA_PAN = 0.003
"""Largest pan, frame heights per frame: a quarter of the slowest main object, so the object's
motion on screen keeps its direction."""
CAMERA_ZOOM = 0.0045
"""Largest zoom rate, log scale per frame (0.87x to 1.15x over 33 frames)."""
BACKGROUND_WAVES = 4
TEXTURE_DEPTH = 0.35
"""Texture modulates an object's brightness by up to this fraction; its hue never changes."""
EDGE_SOFTNESS_PX = 1.0


def triangle_circumradius(area_radius: float | torch.Tensor):
    """Equilateral triangle with the area of a circle of ``area_radius``: 3 sqrt(3) R^2 / 4 = pi r^2."""
    return area_radius * math.sqrt(4 * math.pi / (3 * math.sqrt(3)))


@dataclass
class SceneParams:
    """Per-clip scene parameters, batched: B clips, K = OBJECTS objects (index 0 is the main one)."""

    shape: torch.Tensor  # (B, K) int, SHAPE_IDS
    colour: torch.Tensor  # (B, K, 3)
    radius: torch.Tensor  # (B, K) equal-area radius, world units
    position: torch.Tensor  # (B, K, 2) at frame 0
    velocity: torch.Tensor  # (B, K, 2) per frame
    angle: torch.Tensor  # (B, K) at frame 0
    spin: torch.Tensor  # (B, K) rad per frame
    texture: torch.Tensor  # (B, K, 5): kind (0 stripes, 1 checker, 2 waves), frequency, direction, two phases
    in_front: torch.Tensor  # (B, K) 1: drawn over the main object, 0: behind it
    present: torch.Tensor  # (B, K) 0 or 1
    pan: torch.Tensor  # (B, 2) camera centre velocity
    zoom_rate: torch.Tensor  # (B,) log zoom per frame
    ground: torch.Tensor  # (B, 3) background colour at mean brightness
    waves: torch.Tensor  # (B, BACKGROUND_WAVES, 5): wave vector (2), phase, amplitude, channel tint

    def to(self, device) -> SceneParams:
        return SceneParams(**{k: v.to(device) for k, v in self.__dict__.items()})


def _uniform(g: torch.Generator, low: float, high: float, *shape) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)


def sample_scene(class_id: int, seed: int, frames: int = DEFAULT_FRAMES,
                 aspect: float = DEFAULT_WIDTH / DEFAULT_HEIGHT) -> dict[str, torch.Tensor]:
    """One clip's parameters (unbatched), from one CPU generator seeded by (class, seed)."""
    pc = PROMPT_CLASSES[class_id]
    g = torch.Generator().manual_seed(1_000_003 * seed + class_id)
    half_w, half_h = aspect / 2, 0.5
    span = frames - 1

    shape = torch.zeros(OBJECTS, dtype=torch.long)
    colour = torch.zeros(OBJECTS, 3, dtype=torch.float64)
    radius = torch.zeros(OBJECTS, dtype=torch.float64)
    position = torch.zeros(OBJECTS, 2, dtype=torch.float64)
    velocity = torch.zeros(OBJECTS, 2, dtype=torch.float64)
    angle = _uniform(g, 0, 2 * math.pi, OBJECTS)
    spin = torch.zeros(OBJECTS, dtype=torch.float64)
    texture = torch.stack([
        torch.randint(0, 3, (OBJECTS,), generator=g).double(),
        _uniform(g, 14.0, 40.0, OBJECTS),  # per equal-area radius: 2-6 periods across the object
        _uniform(g, 0, math.pi, OBJECTS),
        _uniform(g, 0, 2 * math.pi, OBJECTS),
        _uniform(g, 0, 2 * math.pi, OBJECTS),
    ], dim=-1)
    in_front = torch.zeros(OBJECTS, dtype=torch.float64)
    present = torch.ones(OBJECTS, dtype=torch.float64)

    # main object: its class decides colour, shape and motion
    shape[0] = SHAPE_IDS[pc.shape]
    colour[0] = torch.tensor(COLOURS[pc.colour], dtype=torch.float64) * _uniform(g, 0.85, 1.0, 1)
    radius[0] = _uniform(g, *MAIN_RADIUS, 1)
    if pc.motion == ROTATES:
        position[0] = torch.stack([_uniform(g, -0.15, 0.15, 1), _uniform(g, -0.1, 0.1, 1)], -1)[0]
        sign = 1.0 if torch.rand(1, generator=g).item() < 0.5 else -1.0
        spin[0] = sign * _uniform(g, *ROTATION_SPEED, 1)
    else:
        direction = torch.tensor(DIRECTIONS[pc.motion], dtype=torch.float64)
        across = torch.stack([-direction[1], direction[0]])
        speed = _uniform(g, *MAIN_SPEED, 1)
        along_room = half_w if direction[0] != 0 else half_h
        across_room = half_h if direction[0] != 0 else half_w
        # centre the path on the frame, with a little jitter; some paths start or end partly outside
        start = -speed * span / 2 + _uniform(g, -0.25, 0.25, 1) * (along_room - speed * span / 2)
        offset = _uniform(g, -0.6, 0.6, 1) * (across_room - radius[0])
        position[0] = direction * start + across * offset
        velocity[0] = direction * speed
        spin[0] = _uniform(g, -MAIN_SPIN, MAIN_SPIN, 1)

    # distractors: other colours, free motion, entering or leaving the frame, in front or behind
    for k in range(1, OBJECTS):
        present[k] = float(torch.rand(1, generator=g).item() < DISTRACTOR_PRESENT)
        shape[k] = int(torch.randint(0, len(SHAPE_IDS), (1,), generator=g))
        colour[k] = torch.tensor(DISTRACTOR_COLOURS[int(torch.randint(0, len(DISTRACTOR_COLOURS), (1,),
                                                                      generator=g))], dtype=torch.float64)
        radius[k] = _uniform(g, *DISTRACTOR_RADIUS, 1)
        heading = _uniform(g, 0, 2 * math.pi, 1)
        speed = _uniform(g, *DISTRACTOR_SPEED, 1)
        if torch.rand(1, generator=g).item() < DISTRACTOR_ENTERS:
            # start just outside, aimed across the frame so it comes in within the clip
            edge = heading + math.pi
            start = torch.cat([torch.cos(edge) * (half_w + radius[k]), torch.sin(edge) * (half_h + radius[k])])
            speed = torch.clamp(speed, min=2.5 * radius[k].item() / span)
            heading = heading + _uniform(g, -0.5, 0.5, 1)
        else:
            start = torch.cat([_uniform(g, -half_w, half_w, 1), _uniform(g, -half_h, half_h, 1)])
        velocity[k] = torch.cat([torch.cos(heading), torch.sin(heading)]) * speed
        if k == 1 and torch.rand(1, generator=g).item() < DISTRACTOR_CROSSES:
            # meet the main object mid-clip: an occlusion (or a pass behind it) to track through
            meet = _uniform(g, 0.25, 0.75, 1) * span
            start = position[0] + velocity[0] * meet + _uniform(g, -0.5, 0.5, 2) * radius[0] - velocity[k] * meet
        position[k] = start
        spin[k] = _uniform(g, -DISTRACTOR_SPIN, DISTRACTOR_SPIN, 1)
        in_front[k] = float(torch.rand(1, generator=g).item() < DISTRACTOR_IN_FRONT)

    pan_heading = _uniform(g, 0, 2 * math.pi, 1)
    pan = torch.cat([torch.cos(pan_heading), torch.sin(pan_heading)]) * _uniform(g, 0, CAMERA_PAN, 1)
    zoom_rate = _uniform(g, -CAMERA_ZOOM, CAMERA_ZOOM, 1)[0]
    grey = _uniform(g, 0.3, 0.6, 1)
    ground = grey * (1 + _uniform(g, -0.12, 0.12, 3))  # low saturation: never mistaken for a class colour
    wave_heading = _uniform(g, 0, math.pi, BACKGROUND_WAVES)
    wave_number = _uniform(g, 6.0, 26.0, BACKGROUND_WAVES)
    waves = torch.stack([
        torch.cos(wave_heading) * wave_number, torch.sin(wave_heading) * wave_number,
        _uniform(g, 0, 2 * math.pi, BACKGROUND_WAVES), _uniform(g, 0.03, 0.1, BACKGROUND_WAVES),
        _uniform(g, -0.1, 0.1, BACKGROUND_WAVES),
    ], dim=-1)
    return dict(shape=shape, colour=colour, radius=radius, position=position, velocity=velocity, angle=angle,
                spin=spin, texture=texture, in_front=in_front, present=present, pan=pan, zoom_rate=zoom_rate,
                ground=ground, waves=waves)


def sample_scenes(class_ids, seeds, frames: int = DEFAULT_FRAMES,
                  aspect: float = DEFAULT_WIDTH / DEFAULT_HEIGHT) -> SceneParams:
    scenes = [sample_scene(int(c), int(s), frames, aspect) for c, s in zip(class_ids, seeds, strict=True)]
    return SceneParams(**{k: torch.stack([sc[k] for sc in scenes]).float() if k != "shape"
                          else torch.stack([sc[k] for sc in scenes]) for k in scenes[0]})


def _shape_distance(shape: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to each shape's outline, in equal-area radii (negative inside)."""
    square_half = math.sqrt(math.pi) / 2  # a square of the circle's area
    square = torch.maximum(x.abs(), y.abs()) - square_half
    circle = torch.sqrt(x * x + y * y) - 1.0
    inradius = triangle_circumradius(1.0) / 2
    # equilateral triangle with a vertex at angle -90 degrees (up on screen) before rotation
    edges = [(-math.sin(a) * x + math.cos(a) * y) for a in (math.pi / 2 + 2 * math.pi * i / 3 for i in range(3))]
    triangle = torch.maximum(torch.maximum(edges[0], edges[1]), edges[2]) - inradius
    arm_long, arm_short = 1.15, 0.42
    cross = torch.minimum(torch.maximum(x.abs() - arm_long, y.abs() - arm_short),
                          torch.maximum(x.abs() - arm_short, y.abs() - arm_long))
    return torch.where(shape == 0, square, torch.where(shape == 1, circle, torch.where(shape == 2, triangle, cross)))


def _texture(params: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Brightness pattern in [0, 1] in the object's own (rotating) coordinates."""
    kind, freq, direction, phase_a, phase_b = params.unbind(-1)
    u = x * torch.cos(direction) + y * torch.sin(direction)
    v = -x * torch.sin(direction) + y * torch.cos(direction)
    stripes = 0.5 + 0.5 * torch.sin(freq / 3 * u + phase_a)
    checker = 0.5 + 0.5 * torch.tanh(4 * torch.sin(freq / 4 * u + phase_a) * torch.sin(freq / 4 * v + phase_b))
    waves = 0.5 + 0.25 * (torch.sin(freq / 2.5 * u + phase_a) + torch.sin(freq / 5 * v + phase_b))
    return torch.where(kind == 0, stripes, torch.where(kind == 1, checker, waves))


def render(scene: SceneParams, frames: int = DEFAULT_FRAMES, height: int = DEFAULT_HEIGHT,
           width: int = DEFAULT_WIDTH, return_layers: bool = False, first_frames: torch.Tensor | None = None):
    """Frames (B, T, H, W, 3) float32 in [0, 1] on the scene's device; with ``return_layers`` also
    per object and frame the in-frame coverage (pixels) and the visible (unoccluded) coverage.
    ``first_frames`` (B,): each clip shows its scene from that frame on (a window of a longer scene).

    Objects are shaded only on the pixels of their bounding box in each frame (a few percent of the
    frame for distractors), gathered as flat indices: the cost is the background plus the objects'
    own area, not objects x frame size. Draw order: distractors behind, the main object, distractors
    in front (each group in object order)."""
    device = scene.radius.device
    batch = len(scene.radius)
    t = torch.arange(frames, device=device, dtype=torch.float32).expand(batch, frames)  # (B, T)
    if first_frames is not None:
        t = t + first_frames.to(device, torch.float32)[:, None]
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height - 0.5
    xs = ((torch.arange(width, device=device, dtype=torch.float32) + 0.5) / height) - width / height / 2
    zoom = torch.exp(scene.zoom_rate[:, None] * t)  # (B, T)
    centre = scene.pan[:, None, :] * t[..., None]  # (B, T, 2)
    # world coordinates are separable: x depends on (clip, frame, column), y on (clip, frame, row)
    wx = centre[..., 0, None] + xs / zoom[..., None]  # (B, T, W)
    wy = centre[..., 1, None] + ys / zoom[..., None]  # (B, T, H)

    brightness = torch.ones((batch, frames, height, width), device=device)
    tint = torch.zeros_like(brightness)
    for j in range(BACKGROUND_WAVES):
        kx, ky, phase, amplitude, tint_share = (scene.waves[:, j, i, None, None] for i in range(5))
        ripple = torch.sin((kx * wx + phase)[:, :, None, :] + (ky * wy)[:, :, :, None])
        brightness.add_(ripple * amplitude[..., None])
        tint.add_(ripple * (amplitude * tint_share)[..., None])
    image = scene.ground[:, None, None, None, :] * brightness[..., None]
    image += tint[..., None] * torch.tensor([1.0, 0.0, -1.0], device=device)
    del brightness, tint
    pixels = image.view(-1, 3)

    extents = []
    for k in range(OBJECTS):
        pos = scene.position[:, k, None, :] + scene.velocity[:, k, None, :] * t[..., None]  # (B, T, 2)
        screen = (pos - centre) * zoom[..., None]
        reach = (1.6 * scene.radius[:, k, None] * zoom + 2.0 / height) * (scene.present[:, k, None] > 0)
        near_x = (xs - screen[..., 0, None]).abs() < reach[..., None]  # (B, T, W)
        near_y = (ys - screen[..., 1, None]).abs() < reach[..., None]  # (B, T, H)
        flat = (near_y[..., :, None] & near_x[..., None, :]).flatten().nonzero().squeeze(1)
        extents.append((flat, pos))

    draw_order = [(k, False) for k in range(1, OBJECTS)] + [(0, None)] + [(k, True) for k in range(1, OBJECTS)]
    layers = {"alpha": [None] * OBJECTS}
    for k, in_front in draw_order:
        flat, pos = extents[k]
        frame_index = flat // (height * width)  # clip * T + frame
        clip = frame_index // frames
        if in_front is not None:
            keep = (scene.in_front[clip, k] > 0) == in_front
            flat, frame_index, clip = flat[keep], frame_index[keep], clip[keep]
        row = (flat // width) % height
        col = flat % width
        theta = (scene.angle[:, k, None] + scene.spin[:, k, None] * t).flatten()[frame_index]
        r = scene.radius[clip, k]
        dx = wx.flatten(0, 1)[frame_index, col] - pos.flatten(0, 1)[frame_index, 0]
        dy = wy.flatten(0, 1)[frame_index, row] - pos.flatten(0, 1)[frame_index, 1]
        cos, sin = torch.cos(theta), torch.sin(theta)
        lx, ly = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r
        dist_px = _shape_distance(scene.shape[clip, k], lx, ly) * r * zoom.flatten()[frame_index] * height
        alpha = (0.5 - dist_px / EDGE_SOFTNESS_PX).clamp(0, 1)
        shade = 1 - TEXTURE_DEPTH + TEXTURE_DEPTH * _texture(scene.texture[clip, k], lx, ly)
        colour = scene.colour[clip, k] * shade[:, None]
        pixels[flat] = pixels[flat] * (1 - alpha[:, None]) + colour * alpha[:, None]
        if return_layers:
            full = torch.zeros(batch * frames * height * width, device=device)
            full[flat] = alpha
            layers["alpha"][k] = full.view(batch, frames, height, width)
    image.clamp_(0, 1)
    if not return_layers:
        return image
    alphas = torch.stack(layers["alpha"], 1)  # (B, K, T, H, W)
    front = scene.in_front.clone()
    front[:, 0] = 0
    hidden = 1 - torch.prod(1 - alphas * front[:, :, None, None, None], dim=1)
    visible_main = (alphas[:, 0] * (1 - hidden)).sum((-1, -2))
    return image, {"coverage": alphas.sum((-1, -2)), "visible_main": visible_main}


def generate_clips(class_ids, seeds, frames: int = DEFAULT_FRAMES, height: int = DEFAULT_HEIGHT,
                   width: int = DEFAULT_WIDTH, device: str | torch.device = "cpu", batch: int = 64,
                   return_layers: bool = False, scene_frames: int | None = None, first_frames=None):
    """Clips of the given classes and seeds, (B, T, H, W, 3) float32 in [0, 1] on ``device``,
    rendered ``batch`` clips at a time (memory: about 60 bytes per pixel per clip).

    ``scene_frames`` > ``frames``: the scenes are laid out for that length (the main object's path is
    centred on the longer clip) and each clip is the window from its ``first_frames`` entry on, so
    the object may start anywhere on its path, e.g. near the edge it is about to leave."""
    scene = sample_scenes(class_ids, seeds, scene_frames or frames, width / height).to(device)
    offsets = None if first_frames is None else torch.as_tensor(first_frames, dtype=torch.float32)
    outputs = []
    for start in range(0, len(scene.radius), batch):
        part = SceneParams(**{k: v[start:start + batch] for k, v in scene.__dict__.items()})
        window = None if offsets is None else offsets[start:start + batch]
        outputs.append(render(part, frames, height, width, return_layers, window))
    if not return_layers:
        return torch.cat(outputs)
    return torch.cat([o[0] for o in outputs]), {
        key: torch.cat([o[1][key] for o in outputs]) for key in outputs[0][1]}
