"""Automatic recognisability check for videos of the reference model's prompt classes.

From decoded frames alone: segment the class colour (hue window, saturated and bright enough:
backgrounds are desaturated and distractors far from every class hue), keep the frames where the
segment is one compact blob, track its centroid, and compare with the prompt class:

- colour: the blob is found in most frames;
- motion: the least-squares velocity of the centroid points the class direction and covers enough
  of the frame, or (for "rotates") the blob stays put while its orientation turns;
- shape: circular harmonics of the blob about its centroid, |sum w z^k| / sum w |z|^k with
  z = (x - cx) + i (y - cy): a square has a 4-fold harmonic, a triangle a 3-fold one, a disc none.
  The argument of the same harmonic gives the orientation that "rotates" is judged on.

Thresholds leave room for a camera pan (at most a quarter of the object's speed in the generator),
zoom, partial occlusion and the blur of a small VAE. Plain torch; frames (T, H, W, 3) in [0, 1].
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_import import load_pack  # noqa: E402

load_pack("rtv")
from rtv.kernels.reference_prompts import COLOURS, DIRECTIONS, ROTATES, prompt_class  # noqa: E402

HUE_TOLERANCE_DEG = 25.0
MIN_SATURATION = 0.45
MIN_VALUE = 0.25
MIN_AREA_FRACTION = 0.004
"""Smallest blob, as a fraction of the frame (60 px at 96x128; a whole main object is 600-1200)."""
COMPACT_RADIUS = 2.0
"""A blob is compact when nearly all its pixels lie within this many equal-area radii (+2 px)."""
MIN_COMPACT_SHARE = 0.85
MIN_DETECTED_SHARE = 0.6
MIN_SPEED = 0.005
"""Least speed along the class direction, frame heights per frame (generator: 0.013 and up, a pan
takes at most 0.003 off)."""
MAX_SIDEWAYS = 0.5
"""Largest sideways speed relative to the speed along the direction."""
MAX_ROTATOR_SPEED = 0.005
MIN_TURN_RATE = 0.012
"""Least spin of a "rotates" object, rad per frame (generator: 0.03 and up)."""
WHOLE_AREA_SHARE = 0.85
SHAPE_HARMONIC = {"square": 4, "triangle": 3}
"""Whole shapes give |h4| = 0.43 (square), |h3| = 0.66 (triangle), both under 0.03 (disc)."""
MIN_SQUARE_HARMONIC = 0.22
MIN_TRIANGLE_HARMONIC = 0.3
HARMONIC_DOMINANCE = 1.5
"""The shape's own harmonic must exceed the other one by this factor (a disc cut by the frame edge
or by an occluder gets some of both)."""


@dataclass
class TrackVerdict:
    prompt: str
    passed: bool
    colour_ok: bool
    motion_ok: bool
    shape_ok: bool
    detected_share: float
    travel_along: float
    travel_sideways: float
    turn_rate: float
    harmonic3: float
    harmonic4: float
    shape_seen: str

    def as_dict(self) -> dict:
        return asdict(self)


def hue_saturation_value(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in degrees [0, 360), saturation and value, of (..., 3) RGB."""
    r, g, b = frames.unbind(-1)
    value, _ = frames.max(-1)
    low, _ = frames.min(-1)
    chroma = value - low
    saturation = torch.where(value > 0, chroma / value.clamp_min(1e-6), torch.zeros_like(value))
    safe = chroma.clamp_min(1e-6)
    hue = torch.where(value == r, ((g - b) / safe) % 6,
                      torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    return hue % 360, saturation, value


def colour_mask(frames: torch.Tensor, colour: str) -> torch.Tensor:
    target_hue, _, _ = hue_saturation_value(torch.tensor(COLOURS[colour]))
    hue, saturation, value = hue_saturation_value(frames)
    distance = (hue - target_hue).abs()
    distance = torch.minimum(distance, 360 - distance)
    return (distance < HUE_TOLERANCE_DEG) & (saturation > MIN_SATURATION) & (value > MIN_VALUE)


def blob_statistics(mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per frame of a (T, H, W) mask: area, centroid, compact share, harmonics 3 and 4 (complex),
    whether it touches the frame edge."""
    frames, height, width = mask.shape
    w = mask.float()
    ys = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    xs = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    area = w.sum((1, 2))
    safe_area = area.clamp_min(1)
    cx = (w * xs).sum((1, 2)) / safe_area
    cy = (w * ys).sum((1, 2)) / safe_area
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    radius = torch.sqrt(dx * dx + dy * dy)
    reach = COMPACT_RADIUS * torch.sqrt(safe_area / math.pi) + 2
    compact = (w * (radius <= reach[:, None, None])).sum((1, 2)) / safe_area
    z = torch.complex(dx, dy)
    harmonics = {}
    for k in (3, 4):
        zk = z**k
        harmonics[k] = (w * zk).sum((1, 2)) / (w * radius**k).sum((1, 2)).clamp_min(1e-6)
    at_edge = (mask[:, 0].any(-1) | mask[:, -1].any(-1) | mask[:, :, 0].any(-1) | mask[:, :, -1].any(-1))
    return {"area": area, "cx": cx, "cy": cy, "compact": compact, "h3": harmonics[3], "h4": harmonics[4],
            "at_edge": at_edge}


def classify_outline(h3: float, h4: float) -> str:
    if h4 >= MIN_SQUARE_HARMONIC and h4 > HARMONIC_DOMINANCE * h3:
        return "square"
    if h3 >= MIN_TRIANGLE_HARMONIC and h3 > HARMONIC_DOMINANCE * h4:
        return "triangle"
    if max(h3, h4) < MIN_SQUARE_HARMONIC:
        return "circle"
    return "unclear"


def _slope(t: torch.Tensor, y: torch.Tensor) -> float:
    t = t - t.mean()
    return float((t * (y - y.mean())).sum() / (t * t).sum().clamp_min(1e-9))


def check_video(frames: torch.Tensor, prompt: str) -> TrackVerdict:
    """Does a decoded video (T, H, W, 3) in [0, 1] show its prompt class?"""
    pc = prompt_class(prompt)
    frames = torch.as_tensor(frames).float().cpu()
    count, height, width, _ = frames.shape
    stats = blob_statistics(colour_mask(frames, pc.colour))
    detected = (stats["area"] >= MIN_AREA_FRACTION * height * width) & (stats["compact"] >= MIN_COMPACT_SHARE)
    detected_share = float(detected.float().mean())
    colour_ok = detected_share >= MIN_DETECTED_SHARE and int(detected.sum()) >= 3

    along = sideways = turn_rate = 0.0
    h3 = h4 = 0.0
    shape_seen = "none"
    motion_ok = shape_ok = False
    if colour_ok:
        t = torch.arange(count, dtype=torch.float32)[detected]
        span = count - 1
        vx = _slope(t, stats["cx"][detected] / height)
        vy = _slope(t, stats["cy"][detected] / height)
        # the outline is judged where the blob is whole: frames where it touches the frame edge or
        # is partly hidden (smaller than usual) are left out when others remain
        full_area = torch.quantile(stats["area"][detected], 0.9)
        whole = detected & ~stats["at_edge"] & (stats["area"] >= WHOLE_AREA_SHARE * full_area)
        outline = whole if int(whole.sum()) >= 3 else detected
        h3 = float(stats["h3"][outline].abs().median())
        h4 = float(stats["h4"][outline].abs().median())
        shape_seen = classify_outline(h3, h4)
        shape_ok = shape_seen == pc.shape
        if pc.motion == ROTATES:
            along = math.hypot(vx, vy) * span
            k = SHAPE_HARMONIC[pc.shape]
            phase = torch.angle(stats[f"h{k}"][detected])
            unwrapped = phase[0] + torch.cat([torch.zeros(1), torch.cumsum(
                torch.remainder(phase.diff() + math.pi, 2 * math.pi) - math.pi, 0)])
            turn_rate = _slope(t, unwrapped) / k
            motion_ok = along <= MAX_ROTATOR_SPEED * span and abs(turn_rate) >= MIN_TURN_RATE
        else:
            dx, dy = DIRECTIONS[pc.motion]
            along = (vx * dx + vy * dy) * span
            sideways = abs(vx * dy - vy * dx) * span
            motion_ok = along >= MIN_SPEED * span and sideways <= MAX_SIDEWAYS * along
    return TrackVerdict(prompt=prompt, passed=colour_ok and motion_ok and shape_ok, colour_ok=colour_ok,
                        motion_ok=motion_ok, shape_ok=shape_ok, detected_share=detected_share,
                        travel_along=along, travel_sideways=sideways, turn_rate=turn_rate, harmonic3=h3,
                        harmonic4=h4, shape_seen=shape_seen)


def recognisability(videos, prompts) -> dict:
    """Share of videos whose verdict passes, overall and per prompt, with every verdict."""
    verdicts = [check_video(v, p) for v, p in zip(videos, prompts, strict=True)]
    per_prompt: dict[str, list[bool]] = {}
    for v in verdicts:
        per_prompt.setdefault(v.prompt, []).append(v.passed)
    return {
        "rate": sum(v.passed for v in verdicts) / max(len(verdicts), 1),
        "per_prompt": {p: sum(ok) / len(ok) for p, ok in per_prompt.items()},
        # the issue's own example of the check: the object's colour and its track match the class
        "colour_and_motion_rate": sum(v.colour_ok and v.motion_ok for v in verdicts) / max(len(verdicts), 1),
        "colour_rate": sum(v.colour_ok for v in verdicts) / max(len(verdicts), 1),
        "motion_rate": sum(v.motion_ok for v in verdicts) / max(len(verdicts), 1),
        "shape_rate": sum(v.shape_ok for v in verdicts) / max(len(verdicts), 1),
        "verdicts": [v.as_dict() for v in verdicts],
    }
