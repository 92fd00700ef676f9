"""Ulysses all-to-all between a sequence shard with all heads and the full sequence with a head shard.

Before self-attention each rank holds [.., S tokens, H heads, D]; one all-to-all gives it
[.., W * S tokens, H / W heads, D] (every rank's tokens, in rank order, so the padded global order),
and the inverse all-to-all after attention brings [.., S, H, D] back. Rank j owns heads
[j * H / W, (j + 1) * H / W). q, k and v travel in one all-to-all (a leading stack dimension).

``CommTimer`` measures the time spent in these collectives (CUDA events on GPUs, wall clock on the
CPU where gloo collectives are synchronous) for the benchmark's communication share.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class CommTimer:
    """Accumulates collective time; off unless ``enabled``."""

    enabled: bool = False
    cpu_seconds: float = 0.0
    calls: int = 0
    _events: list = field(default_factory=list)

    def reset(self) -> None:
        self.cpu_seconds, self.calls, self._events = 0.0, 0, []

    def seconds(self) -> float:
        """Total so far (synchronises pending CUDA events)."""
        total = self.cpu_seconds
        for start, end in self._events:
            end.synchronize()
            total += start.elapsed_time(end) / 1000.0
        return total

    def timed(self, device: torch.device, fn, *args):
        if not self.enabled:
            return fn(*args)
        self.calls += 1
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn(*args)
            end.record()
            self._events.append((start, end))
            return out
        t0 = time.perf_counter()
        out = fn(*args)
        self.cpu_seconds += time.perf_counter() - t0
        return out


class SPComm:
    """This rank's place in the sequence-parallel group (``world`` 1: no communication at all)."""

    def __init__(self, rank: int, world: int, group=None, timer: CommTimer | None = None):
        self.rank, self.world, self.group = rank, world, group
        self.timer = timer or CommTimer()

    def _all_to_all(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        self.timer.timed(x.device, dist.all_to_all_single, out, x, None, None, self.group)
        return out

    def seq_to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[*lead, S, H, D] (my tokens, all heads) -> [*lead, W * S, H / W, D] (all tokens, my heads)."""
        if self.world == 1:
            return x
        *lead, s, h, d = x.shape
        w = self.world
        send = x.reshape(*lead, s, w, h // w, d).movedim(-3, 0).contiguous()  # [W, *lead, S, h, D]
        received = self._all_to_all(send)  # [source rank, *lead, S, h, D]
        return received.movedim(0, -4).reshape(*lead, w * s, h // w, d)

    def heads_to_seq(self, y: torch.Tensor) -> torch.Tensor:
        """[*lead, W * S, H / W, D] -> [*lead, S, H, D], the inverse of ``seq_to_heads``."""
        if self.world == 1:
            return y
        *lead, n, h, d = y.shape
        w = self.world
        send = y.reshape(*lead, w, n // w, h, d).movedim(-4, 0).contiguous()  # [W, *lead, S, h, D]
        received = self._all_to_all(send)  # [source rank (its heads), *lead, S, h, D]
        return received.movedim(0, -3).reshape(*lead, n // w, w * h, d)

    def gather_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S, C] shards of every rank -> [B, W * S, C] on every rank (rank order = token order)."""
        if self.world == 1:
            return x
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(self.world)]
        self.timer.timed(x.device, dist.all_gather, parts, x, self.group)
        return torch.cat(parts, dim=1)
