"""Few-step schedule and chunk layout of causal chunk-wise Wan generation (Self-Forcing, CausVid).

Schedule (Self-Forcing ``configs/self_forcing_dmd.yaml`` with ``warp_denoising_step``): the steps are
timesteps t of the 1000-step training scheduler, warped by its flow shift,

    s = t / 1000,    sigma = shift * s / (1 + (shift - 1) * s),

so "1000,750,500,250" with shift 5 gives sigmas 1, 0.9375, 0.8333, 0.625, and sigma 0 ends the list
(the model's timestep is 1000 * sigma, as ComfyUI's flow models compute it).

Layout: the video's latent frames are generated ``chunk_latent_frames`` at a time in order (the last
chunk may be shorter); chunk k starts at global latent frame k * chunk and uses seed + k. Wan's VAE
turns latent 0 into one pixel frame and every later latent into four.

Pure Python: no ComfyUI, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chunk_plan import MAX_SEED, TEMPORAL_STRIDE

TRAIN_TIMESTEPS = 1000
ALL_FRAMES = -1  # kv_window_frames: keep every generated frame in the cache
# Self-Forcing / Wan 2.1 train on 81 frames: a longer all-frames cache leaves the trained range.
TRAINED_CONTEXT_LATENTS = 21


def parse_timesteps(text: str) -> list[float]:
    """'1000, 750, 500, 250' -> [1000.0, 750.0, 500.0, 250.0]; raises ValueError saying what to change."""
    example = "use decreasing numbers between 1 and 1000 separated by commas, e.g. '1000,750,500,250'"
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError(f"[RTV] timesteps is empty: {example}")
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"[RTV] timesteps: cannot read {part!r}; {example}") from None
    for value in values:
        if not 0 < value <= TRAIN_TIMESTEPS:
            raise ValueError(f"[RTV] timesteps: {value:g} is outside (0, {TRAIN_TIMESTEPS}]; {example}")
    if any(b >= a for a, b in zip(values, values[1:])):
        raise ValueError(f"[RTV] timesteps must decrease strictly, got {text.strip()!r}; {example}")
    return values


def warp_timestep(timestep: float, shift: float) -> float:
    """Sigma of a training timestep under the scheduler's flow shift (Self-Forcing's warp)."""
    s = timestep / TRAIN_TIMESTEPS
    return shift * s / (1 + (shift - 1) * s)


def causal_sigmas(timesteps: str, shift: float) -> list[float]:
    """The chunk's sigmas: one per denoising step, then 0 (the clean result)."""
    if not shift > 0:
        raise ValueError(f"[RTV] shift must be positive (Self-Forcing uses 5.0), got {shift}")
    return [warp_timestep(t, shift) for t in parse_timesteps(timesteps)] + [0.0]


def latent_frames_for(total_frames: int) -> int:
    """Latent frames that cover ``total_frames`` pixel frames (Wan: 4k+1 frames -> k+1 latents), rounding up."""
    return -(-(max(total_frames, 1) - 1) // TEMPORAL_STRIDE) + 1


def pixel_frames(first_latent: int, latents: int) -> tuple[int, int]:
    """(first pixel frame, pixel frame count) of latents [first_latent, first_latent + latents)."""
    first = 0 if first_latent == 0 else TEMPORAL_STRIDE * first_latent - (TEMPORAL_STRIDE - 1)
    count = TEMPORAL_STRIDE * latents - ((TEMPORAL_STRIDE - 1) if first_latent == 0 else 0)
    return first, count


@dataclass(frozen=True)
class CausalChunk:
    index: int
    first_latent: int  # global latent frame index of the chunk's first frame (its RoPE time position)
    latents: int
    seed: int

    @property
    def first_frame(self) -> int:
        return pixel_frames(self.first_latent, self.latents)[0]

    @property
    def frames(self) -> int:
        return pixel_frames(self.first_latent, self.latents)[1]


@dataclass(frozen=True)
class CausalPlan:
    total_frames: int
    total_latents: int
    chunk_latents: int
    cache_frames: int  # latent frames the KV cache holds, the current chunk included
    sink_frames: int
    chunks: tuple[CausalChunk, ...]
    adjustments: tuple[str, ...] = field(default=())

    @property
    def rolling(self) -> bool:
        return self.cache_frames < self.total_latents

    def describe(self) -> str:
        cache = (
            f"rolling KV cache of {self.cache_frames} latent frames ({self.sink_frames} sink)"
            if self.rolling
            else "KV cache of all frames"
        )
        head = (
            f"{self.total_frames} frames = {self.total_latents} latent frames in {len(self.chunks)} chunks of "
            f"{self.chunk_latents}, {cache}"
        )
        return head + "".join(f"; {a}" for a in self.adjustments)


def cache_capacity(kv_window_frames: int, sink_frames: int, chunk_latents: int, total_latents: int) -> int:
    """Latent frames the cache must hold (sinks + recent frames + the current chunk); validates the inputs."""
    if sink_frames < 0:
        raise ValueError(f"[RTV] sink_frames must be 0 or more, got {sink_frames}")
    if kv_window_frames == ALL_FRAMES:
        return total_latents
    if kv_window_frames < sink_frames + chunk_latents:
        raise ValueError(
            f"[RTV] kv_window_frames={kv_window_frames} cannot hold sink_frames ({sink_frames}) plus one chunk "
            f"({chunk_latents} latent frames): use at least {sink_frames + chunk_latents}, or -1 to keep all frames."
        )
    return min(kv_window_frames, total_latents)


def plan_causal_chunks(
    total_frames: int,
    chunk_latent_frames: int,
    seed: int = 0,
    kv_window_frames: int = ALL_FRAMES,
    sink_frames: int = 0,
) -> CausalPlan:
    """Lay out the chunks of a causal video; ``total_frames`` is rounded up to 4k+1 (the plan says so)."""
    if total_frames < 1:
        raise ValueError(f"[RTV] total_frames must be at least 1, got {total_frames}")
    if chunk_latent_frames < 1:
        raise ValueError(
            f"[RTV] chunk_latent_frames must be at least 1 (Self-Forcing uses 3), got {chunk_latent_frames}"
        )
    adjustments = []
    total_latents = latent_frames_for(total_frames)
    snapped = pixel_frames(0, total_latents)[1]
    if snapped != total_frames:
        adjustments.append(f"total_frames {total_frames} -> {snapped} (Wan needs 4k+1)")
    capacity = cache_capacity(kv_window_frames, sink_frames, chunk_latent_frames, total_latents)
    if kv_window_frames == ALL_FRAMES and total_latents > TRAINED_CONTEXT_LATENTS:
        adjustments.append(
            f"the cache keeps all {total_latents} latent frames (memory grows with length, "
            f"beyond the {TRAINED_CONTEXT_LATENTS} the model was trained on): set kv_window_frames "
            f"(e.g. {TRAINED_CONTEXT_LATENTS}) for long videos"
        )
    chunks = []
    for k, first in enumerate(range(0, total_latents, chunk_latent_frames)):
        chunks.append(
            CausalChunk(
                index=k,
                first_latent=first,
                latents=min(chunk_latent_frames, total_latents - first),
                seed=(seed + k) % (MAX_SEED + 1),
            )
        )
    return CausalPlan(
        snapped,
        total_latents,
        chunk_latent_frames,
        capacity,
        sink_frames if capacity < total_latents else 0,
        tuple(chunks),
        tuple(adjustments),
    )
