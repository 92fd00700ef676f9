"""Kernel block sizes chosen once per machine and kept on disk across processes.

Upstream MonarchRT re-tunes its Triton kernels for every key length in every new process (about
20 s each, seven key lengths per Self-Forcing video). Here a kernel configuration is measured once
per *shape class* (device, Triton version, dtype, tile sizes, head dim and kernel variant; never the
number of key tiles, which changes only the loop length) and stored in a JSON file, so later
processes start at full speed.

Plain Python (no Triton, no CUDA), so it is testable anywhere. The timing function is passed in.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger("RealtimeVideo")

tuning_listeners: list[Callable[[str], None]] = []
"""Called with a one-line message when a configuration is about to be tuned (seconds of work on a
first run): the ComfyUI patch shows it as the node's progress text."""

CACHE_DIR_ENV = "RTV_CACHE_DIR"
"""Overrides the cache folder (default ``~/.cache/comfyui-realtimevideo``)."""

AUTOTUNE_ENV = "RTV_MONARCH_AUTOTUNE"
"""Set to ``0`` to skip measuring: a stored or shipped choice, else each kernel's first (default)
configuration."""

SHIPPED_ENV = "RTV_MONARCH_SHIPPED_CHOICES"
"""Set to ``0`` to ignore the choices shipped with the pack (benchmarks of a first call from nothing)."""

SHIPPED_CHOICES_PATH = Path(__file__).with_name("shipped_choices.json")
"""Choices measured on the GPUs this pack is benchmarked on (keys name the GPU model and Triton
version, so they apply only there). Compiling every candidate is ~90 % of a first call (H100, 480p,
candidates compiled one at a time: 47.5 s from nothing, 3.1 s with the candidates compiled, 4.8 s
with the choices known: ``bench/results/monarch_first_call_split_h100_session20.json``); with a
shipped choice only the chosen kernels compile. Written by ``tools/ship_monarch_choices.py``."""

CACHE_FILE_NAME = "monarch_autotune.json"
CACHE_FORMAT = 1
"""Bumped when the meaning of stored entries changes; entries of other formats are ignored."""

Config = dict[str, int]


def default_cache_path() -> Path:
    root = os.environ.get(CACHE_DIR_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "comfyui-realtimevideo"
    )
    return Path(root) / CACHE_FILE_NAME


def autotune_enabled() -> bool:
    return os.environ.get(AUTOTUNE_ENV, "1") != "0"


def read_choices(path: Path) -> dict[str, Config]:
    """The entries of a tuning file, or none if it is missing, unreadable or of another format."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # missing, unreadable or corrupt: start over rather than fail the run
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    entries = data.get("entries", {})
    return {k: v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


_shipped: dict[str, Config] | None = None


def shipped_choice(key: str) -> Config | None:
    global _shipped
    if os.environ.get(SHIPPED_ENV, "1") == "0":
        return None
    if _shipped is None:
        _shipped = read_choices(SHIPPED_CHOICES_PATH)
    return _shipped.get(key)


class AutotuneCache:
    """A JSON map ``key -> best config``; reads once, merges with the file on every write.

    Writes go through a temporary file and ``os.replace`` so a reader never sees half a file; a
    concurrent writer at worst loses one entry, which is measured again next time.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_path()
        self._entries: dict[str, Config] | None = None
        self._lock = threading.Lock()

    def _read_file(self) -> dict[str, Config]:
        return read_choices(self.path)

    def get(self, key: str) -> Config | None:
        with self._lock:
            if self._entries is None:
                self._entries = self._read_file()
            return self._entries.get(key)

    def put(self, key: str, config: Config) -> None:
        with self._lock:
            entries = self._read_file()
            entries.update(self._entries or {})
            entries[key] = dict(config)
            self._entries = entries
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".autotune-", suffix=".json")
                with os.fdopen(fd, "w") as f:
                    json.dump({"format": CACHE_FORMAT, "entries": entries}, f, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except OSError:
                # A read-only home still runs at full speed within the process (entries stay in memory).
                pass


_shared_cache: AutotuneCache | None = None


def shared_cache() -> AutotuneCache:
    """The process-wide cache at :func:`default_cache_path` (re-created if the env var changed)."""
    global _shared_cache
    if _shared_cache is None or _shared_cache.path != default_cache_path():
        _shared_cache = AutotuneCache()
    return _shared_cache


COMPILE_THREADS_ENV = "RTV_MONARCH_COMPILE_THREADS"
"""Threads that prepare (compile) the candidates of one tuning at once; ``1`` prepares them in turn."""


def compile_threads() -> int:
    try:
        return max(1, int(os.environ.get(COMPILE_THREADS_ENV, "")))
    except ValueError:
        return max(1, min(8, os.cpu_count() or 1))


def prepare_all(candidates: Sequence[Config], prepare: Callable[[Config], None]) -> int:
    """``prepare`` every candidate, several at once; returns how many failed. Triton spends most of a
    compile outside Python (LLVM, ptxas), so threads overlap them. A candidate that fails here is
    left to ``measure_ms``, which reports it."""

    def quietly(config: Config) -> bool:
        try:
            prepare(dict(config))
        except Exception:  # noqa: BLE001 - measured (and reported) again below
            log.debug("[RTV] preparing %s failed", config, exc_info=True)
            return False
        return True

    threads = min(compile_threads(), len(candidates))
    if threads <= 1:
        return sum(not quietly(config) for config in candidates)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rtv-compile") as pool:
        return sum(not ok for ok in pool.map(quietly, candidates))


def pick_config(
    key: str,
    candidates: Sequence[Config],
    measure_ms: Callable[[Config], float],
    cache: AutotuneCache | None = None,
    prepare: Callable[[Config], None] | None = None,
) -> Config:
    """The stored config for ``key``, else the one shipped for this GPU model, else the fastest
    candidate by ``measure_ms`` (then stored).

    A candidate that fails (e.g. too much shared memory on this GPU) is skipped. With autotuning
    off (``RTV_MONARCH_AUTOTUNE=0``) the first candidate is used and nothing is stored. ``prepare``
    (a first launch, which compiles) runs over all candidates at once before they are timed in turn.
    """
    if not candidates:
        raise ValueError("pick_config needs at least one candidate")
    cache = cache or shared_cache()
    for stored in (cache.get(key), shipped_choice(key)):
        if stored is not None and any(stored == dict(c) for c in candidates):
            return dict(stored)
    if not autotune_enabled():
        return dict(candidates[0])
    # seconds of silence on a first run otherwise: say what is happening and that it happens once
    log.info("[RTV] Monarch: tuning %d kernel configurations for %s (first use of this shape class on this "
             "GPU; kept in %s)", len(candidates), key, cache.path)  # fmt: skip
    for listener in list(tuning_listeners):
        try:
            listener(f"Monarch attention: tuning its kernels for a new shape, once per GPU ({len(candidates)} "
                     f"configurations; kept in {cache.path})")  # fmt: skip
        except Exception:  # noqa: BLE001 - a progress message must never stop the attention call
            log.debug("[RTV] tuning listener failed", exc_info=True)
    start = time.perf_counter()
    if prepare is not None:
        failed = prepare_all(candidates, prepare)
        log.info("[RTV] Monarch: compiled %d configurations in %.1f s (%d threads, %d failed)", len(candidates),
                 time.perf_counter() - start, min(compile_threads(), len(candidates)), failed)  # fmt: skip
    best, best_ms, errors = None, math.inf, []
    for candidate in candidates:
        try:
            ms = measure_ms(dict(candidate))
        except Exception as error:  # noqa: BLE001 - a config that cannot compile/launch is simply not a choice
            errors.append(f"{candidate}: {type(error).__name__}: {error}")
            continue
        if ms < best_ms:
            best, best_ms = dict(candidate), ms
    if best is None:
        raise RuntimeError(f"Monarch autotune: no candidate ran for {key}: " + " | ".join(errors))
    cache.put(key, best)
    log.info("[RTV] Monarch: chose %s (%.3f ms) in %.1f s", describe(best), best_ms, time.perf_counter() - start)
    return best


def describe(entry: dict[str, Any]) -> str:
    return ",".join(f"{k}={entry[k]}" for k in sorted(entry))
