"""The pack's nodes, registered through ComfyUI's V3 extension API (see the package __init__).

One module per capability (attention, camera, streaming, temporal, keyframes); each lists its node
classes in ``NODES``. Modules are found by name, so adding a capability touches no other file.
"""

import importlib
import pkgutil

from comfy_api.latest import ComfyExtension, io
from typing_extensions import override


def all_nodes() -> list[type[io.ComfyNode]]:
    nodes = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        nodes.extend(getattr(module, "NODES", []))
    return nodes


class RealtimeVideoExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()
