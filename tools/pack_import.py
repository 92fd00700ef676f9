"""Load this checkout as a Python package under a chosen name, the way ComfyUI does.

The pack uses relative imports only and its folder must never be put on ``sys.path`` (our
``nodes/`` would shadow ComfyUI's ``nodes.py``). Tests and benchmarks therefore import it as a
package whose name does not depend on what the checkout folder is called.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACK_ROOT = Path(__file__).resolve().parents[1]


def load_pack(name: str = "rtv") -> ModuleType:
    """Import the checkout as package ``name`` (idempotent); ``import name.kernels...`` then works."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, PACK_ROOT / "__init__.py", submodule_search_locations=[str(PACK_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
