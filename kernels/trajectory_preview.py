"""A picture of a camera trajectory, to look at before rendering: the camera path with frusta and
frame numbers, seen from above, from the side and from behind (RTV_TrajectoryPreview).

Poses are drawn relative to the first frame, as the Plücker embedding sees them: the first camera
sits at the origin looking forward, in OpenCV axes (x right, y down, z forward). The top view shows
the x-z plane (right to the right, forward up the page), the side view the z-y plane seen from the
first camera's right (forward to the right, up up the page), and the view from behind the x-y plane
(right to the right, up up the page), where rolls and zooms show as turning or shrinking frusta.
All panels share one scale; a grid with a labelled spacing gives the units.

Drawn with PIL (ComfyUI ships it); poses are read with torch. No ComfyUI import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .camera import CameraTrajectory

DEFAULT_WIDTH = 1536
MIN_WIDTH = 384
MAX_WIDTH = 4096
DEFAULT_FRUSTA = 9
"""Frusta drawn along the path (first and last frame included), each labelled with its frame."""

# Layout, as fractions of the image width, so that every size looks alike.
HEADER_FRACTION = 0.062
MARGIN_FRACTION = 0.022
TITLE_FONT_FRACTION = 0.016
FONT_FRACTION = 0.0125
LINE_FRACTION = 0.0013
FIT_FRACTION = 0.8
"""Share of a panel the drawing fills; the rest leaves room for labels."""
FRUSTUM_DEPTH_FRACTION = 0.1
"""Frustum depth as a fraction of the path's extent; its far rectangle shows the field of view."""
STATIONARY_DEPTH = 0.4
"""Frustum depth (world units) for a camera that does not move (static, zoom, roll, tilt)."""
STILL_EXTENT = 1e-6
"""A path shorter than this (world units) counts as a camera standing still."""
MERGE_LABEL_FRACTION = 0.03
"""Labelled cameras closer than this (fraction of a panel) share one label, e.g. "0-80"."""
UP_MARK_HEIGHT = 0.3
"""Height of the triangle on each frustum's top edge, as a fraction of the image height."""
GRID_LINES_TARGET = 8
LABEL_RINGS = 6
LABEL_DIRECTIONS_DEG = (-45, 45, -135, 135, 0, 180, -90, 90)

BACKGROUND = (248, 248, 245)
PANEL_BACKGROUND = (255, 255, 255)
GRID = (230, 230, 226)
AXIS = (165, 165, 160)
INK = (30, 30, 36)
MUTED_INK = (105, 105, 112)
RAMP = ((40, 70, 205), (120, 40, 170), (200, 55, 115), (232, 115, 45), (205, 145, 0))
"""First -> last frame: blue, purple, red, orange (the part of "plasma" readable on white)."""


@dataclass(frozen=True)
class View:
    """A panel: which world axis (and sign) runs along the screen's x (right) and y (down)."""

    name: str
    screen_x: tuple[int, float]
    screen_y: tuple[int, float]
    x_label: str
    up_label: str


VIEWS = (
    View("top view (from above)", (0, 1.0), (2, -1.0), "right (+x)", "forward (+z)"),
    View("side view (from the right)", (2, 1.0), (1, 1.0), "forward (+z)", "up (-y)"),
    View("view from behind", (0, 1.0), (1, 1.0), "right (+x)", "up (-y)"),
)
FRUSTUM_UV = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.3, 0.0), (0.5, -UP_MARK_HEIGHT), (0.7, 0.0))
"""Normalised image points (u, v), v down: the 4 corners (clockwise from top-left), then the up
triangle over the top edge (left base, apex, right base)."""


def ramp_colour(fraction: float) -> tuple[int, int, int]:
    """Colour of a point ``fraction`` of the way from the first (0) to the last (1) frame."""
    position = min(max(fraction, 0.0), 1.0) * (len(RAMP) - 1)
    index = min(int(position), len(RAMP) - 2)
    t = position - index
    low, high = RAMP[index], RAMP[index + 1]
    return tuple(round(a + (b - a) * t) for a, b in zip(low, high))


def frustum_frames(frames: int, count: int = DEFAULT_FRUSTA) -> list[int]:
    """``count`` frame numbers spread evenly from the first to the last frame (all, if fewer)."""
    if frames <= count:
        return list(range(frames))
    if count == 1:
        return [0]
    return sorted({round(i * (frames - 1) / (count - 1)) for i in range(count)})


def frustum_points(trajectory: CameraTrajectory, frame: int, depth: float) -> Tensor:
    """World points [8, 3] of one camera: its centre, then :data:`FRUSTUM_UV` at ``depth`` along
    its view axis (the image corners and the up triangle)."""
    fx, fy, cx, cy = (float(v) for v in trajectory.intrinsics[frame])
    rays = torch.tensor([[(u - cx) / fx, (v - cy) / fy, 1.0] for u, v in FRUSTUM_UV], dtype=torch.float64)
    centre = trajectory.positions[frame]
    return torch.cat([centre[None], (rays * depth) @ trajectory.rotations[frame].T + centre])


def project(points: Tensor, view: View) -> Tensor:
    """World points [..., 3] -> view coordinates [..., 2] (screen x right, screen y down)."""
    (hx, hs), (vx, vs) = view.screen_x, view.screen_y
    return torch.stack([points[..., hx] * hs, points[..., vx] * vs], dim=-1)


def motion_summary(trajectory: CameraTrajectory) -> str:
    """One line: frames and fps, path length, turn from the first to the last frame, field of view."""
    positions = trajectory.positions
    travelled = float((positions[1:] - positions[:-1]).norm(dim=-1).sum())
    relative = trajectory.rebase(0).rotations[-1]
    turn = math.degrees(math.acos(max(-1.0, min(1.0, (float(relative.trace()) - 1) / 2))))
    first_fov, last_fov = (
        math.degrees(2 * math.atan(0.5 / float(fx))) for fx in trajectory.intrinsics[[0, -1], 0]
    )
    fov = f"{first_fov:.0f}°" if abs(first_fov - last_fov) < 0.5 else f"{first_fov:.0f}° to {last_fov:.0f}°"
    return (
        f"{len(trajectory)} frames at {trajectory.fps:g} fps  ·  path length {travelled:.3g} units  ·  "
        f"turns {turn:.1f}° from first to last frame  ·  horizontal field of view {fov}"
    )


def nice_step(span: float, target_lines: int = GRID_LINES_TARGET) -> float:
    """1, 2 or 5 times a power of ten giving about ``target_lines`` grid lines over ``span``."""
    raw = span / max(target_lines, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


@dataclass(frozen=True)
class _Fonts:
    title: ImageFont.ImageFont
    text: ImageFont.ImageFont
    size: int


def _fonts(width: int) -> _Fonts:
    size = max(9, round(width * FONT_FRACTION))
    try:
        return _Fonts(
            ImageFont.load_default(size=round(width * TITLE_FONT_FRACTION)),
            ImageFont.load_default(size=size),
            size,
        )
    except (TypeError, OSError):  # a Pillow without FreeType: its fixed bitmap font
        return _Fonts(ImageFont.load_default(), ImageFont.load_default(), 11)


@dataclass(frozen=True)
class _Panel:
    view: View
    box: tuple[int, int, int, int]  # left, top, right, bottom, in pixels
    centre: tuple[float, float]  # view coordinates at the middle of the box
    scale: float  # pixels per world unit

    def pixels(self, view_xy: Tensor) -> list[tuple[float, float]]:
        left, top, right, bottom = self.box
        mid_x, mid_y = (left + right) / 2, (top + bottom) / 2
        return [
            (
                mid_x + (float(x) - self.centre[0]) * self.scale,
                mid_y + (float(y) - self.centre[1]) * self.scale,
            )
            for x, y in view_xy
        ]

    def view_range(self, axis: int) -> tuple[float, float]:
        half = (self.box[2 + axis] - self.box[axis]) / 2 / self.scale
        return self.centre[axis] - half, self.centre[axis] + half


class _LabelPlacer:
    """Puts boxed labels near their anchors, trying rings of positions until one overlaps no
    earlier label and stays inside the panel; a label that finds no room is left out."""

    def __init__(self, draw: ImageDraw.ImageDraw, font, bounds: tuple[float, float, float, float]):
        self.draw, self.font, self.bounds = draw, font, bounds
        self.taken: list[tuple[float, float, float, float]] = []

    def _free(self, box) -> bool:
        left, top, right, bottom = self.bounds
        if box[0] < left or box[1] < top or box[2] > right or box[3] > bottom:
            return False
        return not any(
            box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in self.taken
        )

    def place(self, anchor: tuple[float, float], text: str, colour, gap: float, away_from=None) -> bool:
        """Draw ``text`` near ``anchor``, preferring the side opposite ``away_from`` (a pixel offset
        from the anchor, e.g. where the frustum points), so the label does not cover the frustum."""
        x0, y0, x1, y1 = self.draw.textbbox((0, 0), text, font=self.font)
        w, h = x1 - x0, y1 - y0
        pad = max(2.0, 0.25 * h)
        angles = LABEL_DIRECTIONS_DEG
        if away_from is not None and math.hypot(*away_from) > 1:
            preferred = math.degrees(math.atan2(-away_from[1], -away_from[0]))
            angles = sorted(angles, key=lambda a: abs((a - preferred + 180) % 360 - 180))
        for ring in range(1, LABEL_RINGS + 1):
            for angle_deg in angles:
                dx, dy = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
                x, y = anchor[0] + dx * gap * ring, anchor[1] + dy * gap * ring
                left = x - w / 2 if abs(dx) < 0.3 else (x if dx > 0 else x - w)
                top = y - h / 2 if abs(dy) < 0.3 else (y if dy > 0 else y - h)
                box = (left - pad, top - pad, left + w + pad, top + h + pad)
                if self._free(box):
                    self.draw.rounded_rectangle(box, radius=pad, fill=PANEL_BACKGROUND, outline=colour)
                    self.draw.text((left - x0, top - y0), text, fill=colour, font=self.font)
                    self.taken.append(box)
                    return True
        return False


def render_trajectory_preview(
    trajectory: CameraTrajectory,
    width: int = DEFAULT_WIDTH,
    *,
    frusta: int = DEFAULT_FRUSTA,
    title: str = "Camera trajectory",
) -> Tensor:
    """RGB picture [H, W, 3] float32 in [0, 1], H about 0.4 W: a header with a one-line summary
    of the motion and a frame-colour legend, then the top, side and behind views in a row."""
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise ValueError(f"preview width must be between {MIN_WIDTH} and {MAX_WIDTH} pixels, got {width}")
    if frusta < 1:
        raise ValueError(f"draw at least 1 frustum, got {frusta}")
    relative = trajectory.rebase(0)
    header, margin = round(width * HEADER_FRACTION), round(width * MARGIN_FRACTION)
    panel_size = (width - margin * (len(VIEWS) + 1)) // len(VIEWS)
    height = header + panel_size + 2 * margin
    line = max(1, round(width * LINE_FRACTION))
    fonts = _fonts(width)

    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((margin, header * 0.25), title, fill=INK, font=fonts.title)
    draw.text((margin, header * 0.72), motion_summary(relative), fill=MUTED_INK, font=fonts.text)
    legend = (width - margin - width // 6, header * 0.35, width - margin, header * 0.62)
    _draw_legend(draw, fonts.text, len(relative), legend)

    positions = relative.positions
    chosen = frustum_frames(len(relative), frusta)
    path_extent = float((positions.amax(0) - positions.amin(0)).max())
    still = path_extent < STILL_EXTENT
    depth = STATIONARY_DEPTH if still else FRUSTUM_DEPTH_FRACTION * path_extent
    frustum_world = {frame: frustum_points(relative, frame, depth) for frame in chosen}

    # One scale for every panel, fitting everything drawn in the most crowded one.
    bounds = []
    for view in VIEWS:
        drawn = torch.cat([project(positions, view), *(project(p, view) for p in frustum_world.values())])
        bounds.append((drawn.amin(0), drawn.amax(0)))
    extent = max(float((high - low).max()) for low, high in bounds)
    scale = panel_size * FIT_FRACTION / max(extent, STILL_EXTENT)
    panels = []
    for index, (view, (low, high)) in enumerate(zip(VIEWS, bounds)):
        left = margin + index * (panel_size + margin)
        box = (left, header + margin, left + panel_size, header + margin + panel_size)
        panels.append(_Panel(view, box, (float(low[0] + high[0]) / 2, float(low[1] + high[1]) / 2), scale))
    grid_step = nice_step(panel_size / scale)
    for panel in panels:
        _draw_panel(draw, panel, grid_step, relative, chosen, frustum_world, fonts, line)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).float() / 255.0


def _draw_legend(draw: ImageDraw.ImageDraw, font, frames: int, box) -> None:
    left, top, right, bottom = box
    steps = 64
    for i in range(steps):
        x0 = left + (right - left) * i / steps
        x1 = left + (right - left) * (i + 1) / steps
        draw.rectangle((x0, top, x1 + 1, bottom), fill=ramp_colour(i / (steps - 1)))
    text_y = bottom + (bottom - top) * 0.35
    draw.text((left, text_y), "frame 0", fill=MUTED_INK, font=font)
    last = f"frame {frames - 1}"
    draw.text((right - draw.textlength(last, font=font), text_y), last, fill=MUTED_INK, font=font)


def _draw_grid(draw: ImageDraw.ImageDraw, panel: _Panel, step: float) -> None:
    ranges = [panel.view_range(0), panel.view_range(1)]
    for axis in (0, 1):
        low, high = ranges[axis]
        other_low, other_high = ranges[1 - axis]
        for k in range(math.ceil(low / step), math.floor(high / step) + 1):
            ends = [(k * step, other_low), (k * step, other_high)]
            if axis == 1:
                ends = [(x, y) for y, x in ends]
            colour = AXIS if k == 0 else GRID  # the grid lines through the first camera
            draw.line(panel.pixels(torch.tensor(ends)), fill=colour, width=1)


def _draw_panel(
    draw, panel: _Panel, grid_step, trajectory, chosen, frustum_world, fonts: _Fonts, line
) -> None:
    left, top, right, bottom = panel.box
    draw.rectangle(panel.box, fill=PANEL_BACKGROUND)
    _draw_grid(draw, panel, grid_step)
    draw.rectangle(panel.box, outline=AXIS, width=1)

    frames = len(trajectory)
    fraction = [i / max(frames - 1, 1) for i in range(frames)]
    path = panel.pixels(project(trajectory.positions, panel.view))
    for i in range(1, frames):
        draw.line([path[i - 1], path[i]], fill=ramp_colour(fraction[i]), width=2 * line)
    dot = 1.5 * line
    for i, (x, y) in enumerate(path):
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=ramp_colour(fraction[i]))

    frustum_pixels = {frame: panel.pixels(project(frustum_world[frame], panel.view)) for frame in chosen}
    for frame in chosen:
        points = frustum_pixels[frame]
        colour = ramp_colour(fraction[frame])
        centre, corners, up_mark = points[0], points[1:5], points[5:8]
        width = 2 * line if frame in (chosen[0], chosen[-1]) else line
        for corner in corners:
            draw.line([centre, corner], fill=colour, width=width)
        draw.line([*corners, corners[0]], fill=colour, width=width)
        draw.polygon(up_mark, fill=colour)

    # Text last, so that no line crosses a number.
    placer = _LabelPlacer(draw, fonts.text, (left + 2, top + 2, right - 2, bottom - 2))
    caption_box = draw.textbbox((left + 8, top + 6), panel.view.name, font=fonts.title)
    draw.text((left + 8, top + 6), panel.view.name, fill=INK, font=fonts.title)
    axes = f"horizontal: {panel.view.x_label}    vertical: {panel.view.up_label}"
    axes_box = draw.textbbox((left + 8, bottom - 8 - fonts.size), axes, font=fonts.text)
    draw.text((left + 8, bottom - 8 - fonts.size), axes, fill=MUTED_INK, font=fonts.text)
    grid_text = f"grid {grid_step:g}"
    grid_at = (right - 8 - draw.textlength(grid_text, font=fonts.text), top + 8)
    grid_box = draw.textbbox(grid_at, grid_text, font=fonts.text)
    draw.text(grid_at, grid_text, fill=MUTED_INK, font=fonts.text)
    placer.taken += [caption_box, axes_box, grid_box]
    merge = MERGE_LABEL_FRACTION * (right - left)
    for first, last in _label_groups(chosen, path, merge):
        text = str(first) if first == last else f"{first}-{last}"
        far = [sum(c) / 4 for c in zip(*frustum_pixels[first][1:5])]
        pointing = (far[0] - path[first][0], far[1] - path[first][1])
        placer.place(path[first], text, ramp_colour(fraction[last]), gap=fonts.size, away_from=pointing)


def _label_groups(chosen: list[int], path, merge_pixels: float) -> list[tuple[int, int]]:
    """Consecutive labelled frames whose cameras sit within ``merge_pixels`` share one label."""
    groups: list[tuple[int, int]] = []
    for frame in chosen:
        if groups and math.dist(path[groups[-1][0]], path[frame]) < merge_pixels:
            groups[-1] = (groups[-1][0], frame)
        else:
            groups.append((frame, frame))
    return groups
