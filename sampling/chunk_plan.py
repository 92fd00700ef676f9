"""Chunk plans for long videos with a causal video VAE (Wan's and HunyuanVideo's: 4x temporal compression;
LTX-Video's: 8x).

Wan encodes 4a+1 pixel frames into a+1 latents: latent 0 is the first frame alone, latent i >= 1
covers pixel frames 4i-3 .. 4i. With chunks of 4a+1 frames overlapping by 4m+1 frames the stride
is 4(a-m) pixel frames, and chunk k's latents 1..m cover exactly the pixel frames of chunk k-1's
latents a-m+1..a. So the overlap can be pinned latent for latent, finished chunks join in latent space
(keep chunk k's latents m+1..a), and every chunk starts at an integer global latent index k(a-m).
LTX-Video's VAE does the same with 8 frames per latent (8a+1 / 8m+1): ``temporal_stride``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TEMPORAL_STRIDE = 4  # Wan VAE: pixel frames per latent (after the first)
SPATIAL_STRIDE = 8  # Wan 2.1 VAE: pixels per latent row/column
LATENT_CHANNELS = 16  # Wan 2.1 / 2.2 A14B latent channels
MAX_SEED = 0xFFFFFFFFFFFFFFFF


def snap_to_wan_length(frames: int, minimum: int = 1, stride: int = TEMPORAL_STRIDE) -> int:
    """Nearest length of the form stride*k+1 (Wan: 4k+1) at or above ``minimum`` (ties to an even k)."""
    k = max(round((frames - 1) / stride), (minimum - 1 + stride - 1) // stride)
    return stride * k + 1


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
    temporal_stride: int = TEMPORAL_STRIDE  # pixel frames per latent after the first

    @property
    def chunk_latents(self) -> int:
        return (self.chunk_frames - 1) // self.temporal_stride + 1

    @property
    def overlap_latents(self) -> int:
        """m: latents 1..m of a chunk repeat the previous chunk's last m latents."""
        return (self.overlap_frames - 1) // self.temporal_stride

    @property
    def total_latents(self) -> int:
        return (self.total_frames - 1) // self.temporal_stride + 1

    def describe(self) -> str:
        head = (f"{self.total_frames} frames in {len(self.chunks)} chunks of {self.chunk_frames} "
                f"(overlap {self.overlap_frames}, stride {self.chunk_frames - self.overlap_frames})")
        return head + "".join(f"; {a}" for a in self.adjustments)


def plan_chunks(total_frames: int, chunk_frames: int, overlap_frames: int, seed: int = 0,
                temporal_stride: int = TEMPORAL_STRIDE) -> ChunkPlan:  # fmt: skip
    """Snap the lengths to the VAE's 4a+1 / 4m+1 grid (``temporal_stride`` s: sa+1 / sm+1; saying what
    changed) and lay out the chunks.

    The last chunk is full length; ``total_frames`` is rounded up to the next length the chunks tile
    exactly (4a+1 + n * 4(a-m)), and the adjustment says so.
    """
    s = temporal_stride
    if total_frames < 1 or chunk_frames < 1 or overlap_frames < 0:
        raise ValueError("[RTV] total_frames and chunk_frames must be at least 1, overlap_frames at least 0")
    adjustments = []
    chunk = snap_to_wan_length(chunk_frames, minimum=s + 1, stride=s)
    if chunk != chunk_frames:
        adjustments.append(f"chunk_frames {chunk_frames} -> {chunk} (the VAE needs {s}a+1)")
    overlap = snap_to_wan_length(max(overlap_frames, 1), stride=s)
    if overlap >= chunk:
        overlap = chunk - s
    if overlap != overlap_frames:
        adjustments.append(f"overlap_frames {overlap_frames} -> {overlap} (the VAE needs {s}m+1, below the chunk length)")
    stride = chunk - overlap
    total = max(total_frames, chunk)
    extra_chunks = -(-(total - chunk) // stride)
    snapped_total = chunk + extra_chunks * stride
    if snapped_total != total_frames:
        adjustments.append(f"total_frames {total_frames} -> {snapped_total} (whole chunks)")

    a, m = (chunk - 1) // s, (overlap - 1) // s
    chunks = []
    for k in range(extra_chunks + 1):
        pinned = 0 if k == 0 else m
        new = (0, a + 1) if k == 0 else (m + 1, a + 1)
        chunks.append(Chunk(index=k, first_frame=k * stride, first_latent=k * (a - m),
                            seed=(seed + k) % (MAX_SEED + 1), pinned_latents=pinned, new_latents=new))
    return ChunkPlan(snapped_total, chunk, overlap, tuple(chunks), tuple(adjustments), s)
