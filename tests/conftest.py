"""Shared test set-up: load the pack as package ``rtv`` (never by putting its folder on sys.path)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from pack_import import load_pack  # noqa: E402

load_pack("rtv")
