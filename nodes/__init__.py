"""The pack's nodes, registered through ComfyUI's V3 extension API (see the package __init__)."""

from comfy_api.latest import ComfyExtension, io
from typing_extensions import override

from .attention import MonarchAttention

NODES: list[type[io.ComfyNode]] = [MonarchAttention]


class RealtimeVideoExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
