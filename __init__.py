"""ComfyUI-RealtimeVideo: fast and long video diffusion inside ordinary ComfyUI graphs.

ComfyUI 0.3.75 registers a pack through ``comfy_entrypoint`` only when the module does *not*
define ``NODE_CLASS_MAPPINGS``, so this file must never define it. Importing the package stays
cheap (no ComfyUI, no torch): the node modules load when ComfyUI asks for the entry point, which
also lets ``kernels/`` be imported and tested without ComfyUI.
"""

__version__ = "0.1.0"


async def comfy_entrypoint():
    from .nodes import RealtimeVideoExtension

    return RealtimeVideoExtension()
