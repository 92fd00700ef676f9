"""Chunk plans for long videos with Wan's causal VAE (4x temporal compression).

Wan encodes 4a+1 pixel frames into a+1 latents: latent 0 is the first frame alone, latent i >= 1
covers pixel frames 4i-3 .. 4i. With chunks of 4a+1 frames overlapping by 4m+1 frames the stride
is 4(a-m) pixel frames, and chunk k's latents 1..m cover exactly the pixel frames of chunk k-1's
latents a-m+1..a. So the overlap can be pinned latent for latent, finished chunks join in latent space
(keep chunk k's latents m+1..a), and every chunk starts at an integer global latent index k(a-m).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TEMPORAL_STRIDE = 4  # Wan VAE: pixel frames per latent (after the first)
SPATIAL_STRIDE = 8  # Wan 2.1 VAE: pixels per latent row/column
LATENT_CHANNELS = 16  # Wan 2.1 / 2.2 A14B latent channels
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def snap_to_wan_length(frames: int, minimum: int = 1) -> int:
    """Nearest length of the form 4k+1 at or above ``minimum`` (ties round up)."""
    k = max(round((frames - 1) / TEMPORAL_STRIDE), (minimum - 1 + TEMPORAL_STRIDE - 1) // TEMPORAL_STRIDE)
    return TEMPORAL_STRIDE * k + 1


@dataclass(frozen=True)
class Chunk:
    index: int
    first_frame: int  # global pixel frame of the chunk's first frame
    first_latent: int  # global latent index of the chunk's latent 0 (its RoPE time origin)
    seed: int
    pinned_latents: int  # latents 1..m coincide with the previous chunk's last m (0 for chunk 0)
    new_latents: tuple[int, int]  # [start, stop) of the chunk's latents that extend the video


@dataclass(frozen=True)
class ChunkPlan:
    total_frames: int
    chunk_frames: int
    overlap_frames: int
    chunks: tuple[Chunk, ...]
    adjustments: tuple[str, ...] = field(default=())

    @property
    def chunk_latents(self) -> int:
        return (self.chunk_frames - 1) // TEMPORAL_STRIDE + 1

    @property
    def overlap_latents(self) -> int:
        """m: latents 1..m of a chunk repeat the previous chunk's last m latents."""
        return (self.overlap_frames - 1) // TEMPORAL_STRIDE

    @property
    def total_latents(self) -> int:
        return (self.total_frames - 1) // TEMPORAL_STRIDE + 1

    def describe(self) -> str:
        head = (f"{self.total_frames} frames in {len(self.chunks)} chunks of {self.chunk_frames} "
                f"(overlap {self.overlap_frames}, stride {self.chunk_frames - self.overlap_frames})")
        return head + "".join(f"; {a}" for a in self.adjustments)


def plan_chunks(total_frames: int, chunk_frames: int, overlap_frames: int, seed: int = 0) -> ChunkPlan:
    """Snap the lengths to Wan's 4a+1 / 4m+1 grid (saying what changed) and lay out the chunks.

    The last chunk is full length; ``total_frames`` is rounded up to the next length the chunks tile
    exactly (4a+1 + n * 4(a-m)), and the adjustment says so.
    """
    if total_frames < 1 or chunk_frames < 1 or overlap_frames < 0:
        raise ValueError("[RTV] total_frames and chunk_frames must be at least 1, overlap_frames at least 0")
    adjustments = []
    chunk = snap_to_wan_length(chunk_frames, minimum=5)
    if chunk != chunk_frames:
        adjustments.append(f"chunk_frames {chunk_frames} -> {chunk} (Wan needs 4a+1)")
    overlap = snap_to_wan_length(max(overlap_frames, 1))
    if overlap >= chunk:
        overlap = chunk - TEMPORAL_STRIDE
    if overlap != overlap_frames:
        adjustments.append(f"overlap_frames {overlap_frames} -> {overlap} (Wan needs 4m+1, below the chunk length)")
    stride = chunk - overlap
    total = max(total_frames, chunk)
    extra_chunks = -(-(total - chunk) // stride)
    snapped_total = chunk + extra_chunks * stride
    if snapped_total != total_frames:
        adjustments.append(f"total_frames {total_frames} -> {snapped_total} (whole chunks)")

    a, m = (chunk - 1) // TEMPORAL_STRIDE, (overlap - 1) // TEMPORAL_STRIDE
    chunks = []
    for k in range(extra_chunks + 1):
        pinned = 0 if k == 0 else m
        new = (0, a + 1) if k == 0 else (m + 1, a + 1)
        chunks.append(Chunk(index=k, first_frame=k * stride, first_latent=k * (a - m),
                            seed=(seed + k) % (MAX_SEED + 1), pinned_latents=pinned, new_latents=new))
    return ChunkPlan(snapped_total, chunk, overlap, tuple(chunks), tuple(adjustments))
