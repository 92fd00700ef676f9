"""Synthetic scenes with exact ground-truth motion for the flow and interpolation tests.

Textures are sums of random 2D sinusoids (periods between ``MIN_PERIOD`` and ``MAX_PERIOD`` px,
amplitude ~ period^0.5, so coarse structure dominates but every scale has detail). A texture is a
function of continuous coordinates, so a frame is *rendered* by evaluating it at the pixel centres
mapped back through the known motion: no resampling, so the ground truth is exact. All periods
are above 2 px (Nyquist), so the point samples are alias-free.

Coordinates follow the pack's convention (``kernels/warp.py``): pixel (row i, column j) has its
centre at x = j, y = i. For a content motion ``phi`` (a point of frame ``a`` at p is at ``phi(p)``
in frame ``b``), ``b(q) = texture(phi^-1(q))`` and the ground-truth flow is ``phi(p) - p``, so
``a(p) = b(p + flow(p))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MIN_PERIOD = 5.0
MAX_PERIOD = 96.0
WAVES_PER_CHANNEL = 40
# Amplitude ~ period ** SPECTRAL_SLOPE: a mildly "pink" spectrum, like natural images but with
# enough fine texture everywhere for matching.
SPECTRAL_SLOPE = 0.5
# The texture is scaled to mean 0.5 and this standard deviation, then clamped to [0, 1].
TEXTURE_STD = 0.15
SIZE = 256


@dataclass(frozen=True)
class SinusoidTexture:
    """``value_c(x, y) = 0.5 + scale_c * sum_n amp_cn sin(2 pi (f_cn . (x, y)) + phase_cn)``."""

    frequencies: torch.Tensor  # [C, N, 2] cycles per pixel (x, y)
    phases: torch.Tensor  # [C, N]
    amplitudes: torch.Tensor  # [C, N], already scaled to TEXTURE_STD

    @staticmethod
    def random(seed: int, channels: int = 3, waves: int = WAVES_PER_CHANNEL) -> SinusoidTexture:
        generator = torch.Generator().manual_seed(seed)
        log_periods = torch.empty(channels, waves, dtype=torch.float64).uniform_(
            math.log(MIN_PERIOD), math.log(MAX_PERIOD), generator=generator
        )
        periods = log_periods.exp()
        angles = torch.rand(channels, waves, generator=generator, dtype=torch.float64) * math.pi
        frequencies = torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1) / periods.unsqueeze(-1)
        phases = torch.rand(channels, waves, generator=generator, dtype=torch.float64) * 2 * math.pi
        raw = periods**SPECTRAL_SLOPE
        # The standard deviation of a sum of sinusoids with random phases is sqrt(sum(amp^2) / 2).
        std = torch.sqrt((raw**2).sum(dim=1, keepdim=True) / 2)
        return SinusoidTexture(frequencies, phases, raw * (TEXTURE_STD / std))

    def render_affine(
        self, matrix: torch.Tensor, offset: tuple[float, float], height: int, width: int
    ) -> torch.Tensor:
        """Evaluate at texture coordinates ``matrix @ (x, y) + offset`` of every pixel centre (x, y).

        Returns ``[C, H, W]`` float32. The phase of each wave is affine in (x, y), so
        ``sin(kx x + ky y + c) = sin(kx x + c) cos(ky y) + cos(kx x + c) sin(ky y)`` turns the sum
        over waves into two small matrix products (exact, float64, and fast).
        """
        matrix = torch.as_tensor(matrix, dtype=torch.float64)
        fx, fy = self.frequencies[..., 0], self.frequencies[..., 1]
        # Phase = 2 pi (f . (M p + o)) + phase = kx x + ky y + c.
        kx = 2 * math.pi * (fx * matrix[0, 0] + fy * matrix[1, 0])
        ky = 2 * math.pi * (fx * matrix[0, 1] + fy * matrix[1, 1])
        c = 2 * math.pi * (fx * offset[0] + fy * offset[1]) + self.phases
        xs = torch.arange(width, dtype=torch.float64)
        ys = torch.arange(height, dtype=torch.float64)
        along_x = kx.unsqueeze(-1) * xs + c.unsqueeze(-1)  # [C, N, W]
        along_y = ky.unsqueeze(-1) * ys  # [C, N, H]
        amp = self.amplitudes.unsqueeze(-1)
        value = torch.cos(along_y).transpose(1, 2) @ (amp * torch.sin(along_x))
        value = value + torch.sin(along_y).transpose(1, 2) @ (amp * torch.cos(along_x))
        return (0.5 + value).clamp(0.0, 1.0).float()

    def render_shifted(self, shift: tuple[float, float], size: int) -> torch.Tensor:
        """The texture moved by ``shift`` px: pixel p shows texture(p - shift)."""
        return self.render_affine(torch.eye(2), (-shift[0], -shift[1]), size, size)


def pixel_centres(size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` float64 ``[H, W]`` coordinates of the pixel centres."""
    coords = torch.arange(size, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x, y


@dataclass(frozen=True)
class FlowCase:
    """A frame pair ``[1, 3, H, W]`` each, with the exact flow ``[1, 2, H, W]`` from a to b."""

    a: torch.Tensor
    b: torch.Tensor
    flow: torch.Tensor


def affine_pair(
    matrix: torch.Tensor, shift: tuple[float, float], seed: int = 0, size: int = SIZE
) -> FlowCase:
    """Content moves by ``phi(p) = c + M (p - c) + shift`` about the image centre c."""
    texture = SinusoidTexture.random(seed)
    x, y = pixel_centres(size)
    centre = (size - 1) / 2.0
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    # b(q) = texture(phi^-1(q)) with phi^-1(q) = M^-1 q + (c - M^-1 (c + shift)).
    inverse = torch.linalg.inv(matrix)
    origin = torch.tensor([centre + shift[0], centre + shift[1]], dtype=torch.float64)
    offset = torch.tensor([centre, centre], dtype=torch.float64) - inverse @ origin
    px, py = x - centre, y - centre
    flow_x = centre + matrix[0, 0] * px + matrix[0, 1] * py + shift[0] - x
    flow_y = centre + matrix[1, 0] * px + matrix[1, 1] * py + shift[1] - y
    a = texture.render_affine(torch.eye(2), (0.0, 0.0), size, size).unsqueeze(0)
    b = texture.render_affine(inverse, (float(offset[0]), float(offset[1])), size, size).unsqueeze(0)
    flow = torch.stack((flow_x, flow_y)).float().unsqueeze(0)
    return FlowCase(a, b, flow)


def translated_pair(shift: tuple[float, float], seed: int = 0, size: int = SIZE) -> FlowCase:
    return affine_pair(torch.eye(2), shift, seed, size)


def rotated_pair(degrees: float, seed: int = 0, size: int = SIZE) -> FlowCase:
    """Rotation about the image centre (positive = clockwise on screen, since y points down)."""
    theta = math.radians(degrees)
    rotation = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return affine_pair(rotation, (0.0, 0.0), seed, size)


def zoomed_pair(scale: float, seed: int = 0, size: int = SIZE) -> FlowCase:
    """Zoom about the image centre by ``scale`` (> 1: content grows)."""
    return affine_pair(scale * torch.eye(2), (0.0, 0.0), seed, size)


def end_point_error(flow: torch.Tensor, truth: torch.Tensor, margin: int) -> float:
    """Mean end-point error (px) over pixels at least ``margin`` px from every border."""
    error = (flow - truth).square().sum(dim=1).sqrt()
    if margin > 0:
        error = error[..., margin:-margin, margin:-margin]
    return float(error.mean())


# --------------------------------------------------------------------------------------------------
# A textured disc translating over a textured background (interpolation ground truth)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MovingObjectScene:
    """A textured disc (or square) of radius (half side) ``radius``, centred at ``start`` at t = 0,
    moving by ``object_motion`` px per frame in front of a textured background that moves by
    ``background_motion`` px per frame. Motion is linear in t, so any in-between is exact."""

    object_motion: tuple[float, float]
    background_motion: tuple[float, float] = (0.0, 0.0)
    radius: float = 40.0
    start: tuple[float, float] = (110.0, 120.0)
    shape: str = "disc"
    size: int = SIZE
    seed: int = 0

    def coverage(self, t: float) -> torch.Tensor:
        """``[H, W]`` fraction of each pixel covered by the object at time ``t`` (edges anti-aliased
        analytically, to first order in the distance to the edge)."""
        x, y = pixel_centres(self.size)
        centre_x = self.start[0] + t * self.object_motion[0]
        centre_y = self.start[1] + t * self.object_motion[1]
        if self.shape == "disc":
            distance = torch.sqrt((x - centre_x) ** 2 + (y - centre_y) ** 2)
            return (self.radius - distance + 0.5).clamp(0.0, 1.0).float()
        if self.shape == "square":
            cover_x = (self.radius - (x - centre_x).abs() + 0.5).clamp(0.0, 1.0)
            cover_y = (self.radius - (y - centre_y).abs() + 0.5).clamp(0.0, 1.0)
            return (cover_x * cover_y).float()
        raise ValueError(f"unknown shape {self.shape!r}")

    def frame(self, t: float) -> torch.Tensor:
        """The frame at time ``t`` (0 = a, 1 = b): ``[3, H, W]``."""
        background = SinusoidTexture.random(self.seed)
        foreground = SinusoidTexture.random(self.seed + 1000)
        bx, by = self.background_motion
        ox, oy = self.object_motion
        back = background.render_shifted((t * bx, t * by), self.size)
        front = foreground.render_shifted((t * ox, t * oy), self.size)
        coverage = self.coverage(t)
        return coverage * front + (1.0 - coverage) * back

    def frames(self, times: list[float]) -> torch.Tensor:
        return torch.stack([self.frame(t) for t in times])


def psnr(image: torch.Tensor, reference: torch.Tensor, margin: int = 0) -> float:
    """Peak signal-to-noise ratio (dB, peak 1.0), optionally ignoring a border ``margin``."""
    if margin > 0:
        image = image[..., margin:-margin, margin:-margin]
        reference = reference[..., margin:-margin, margin:-margin]
    mse = float((image.float() - reference.float()).square().mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-20))
