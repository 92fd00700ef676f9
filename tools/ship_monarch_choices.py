"""Add the Monarch kernel choices of a GPU run to the ones the pack ships.

The tuner stores its choices in ``~/.cache/comfyui-realtimevideo/monarch_autotune.json`` (or
``$RTV_CACHE_DIR``); benchmark runs on the lent GPU bring that file back. This merges such files into
``kernels/monarch/shipped_choices.json``, newest file last, and drops an entry when another one differs
from it only by a newer kernel revision (``rev=N``: the kernel it named is gone), or when its kernel's
keys carry revisions and it has none.

    python tools/ship_monarch_choices.py path/to/monarch_autotune.json [more.json ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from pack_import import load_pack  # noqa: E402

load_pack("rtv")
from rtv.kernels.monarch.autotune_cache import CACHE_FORMAT, SHIPPED_CHOICES_PATH, read_choices  # noqa: E402

_REVISION = re.compile(r"rev=(\d+)")


REVISED_KINDS = ("stage1", "refine")
"""Kernels whose tune keys carry a revision; an entry of theirs without one predates it."""


def newest_revisions(entries: dict) -> dict:
    entries = {key: value for key, value in entries.items()
               if key.split("|")[2] not in REVISED_KINDS or _REVISION.search(key)}  # fmt: skip
    newest: dict[str, int] = {}
    for key in entries:
        match = _REVISION.search(key)
        if match:
            family = _REVISION.sub("rev=*", key)
            newest[family] = max(newest.get(family, -1), int(match.group(1)))
    return {
        key: value for key, value in entries.items()
        if not (m := _REVISION.search(key)) or int(m.group(1)) == newest[_REVISION.sub("rev=*", key)]
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    entries = read_choices(SHIPPED_CHOICES_PATH)
    for path in args.files:
        found = read_choices(path)
        if not found:
            raise SystemExit(f"{path}: no tuning entries of format {CACHE_FORMAT}")
        entries.update(found)
    kept = newest_revisions(entries)
    SHIPPED_CHOICES_PATH.write_text(json.dumps({"format": CACHE_FORMAT, "entries": kept}, indent=1, sort_keys=True) + "\n")
    devices = sorted({key.split("|")[0] for key in kept})
    print(f"{SHIPPED_CHOICES_PATH.relative_to(REPO)}: {len(kept)} choices ({len(entries) - len(kept)} of older "
          f"kernel revisions dropped) for {', '.join(devices)}")


if __name__ == "__main__":
    main()
