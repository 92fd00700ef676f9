"""Mark Wan's video self-attention calls, the one exact signal ComfyUI 0.3.75 offers.

``optimized_attention_override`` sees self- and cross-attention alike, and shapes cannot tell them
apart (a 2-frame 16x16 latent has 512 tokens, the text length). An object patch of each block's
``self_attn.forward`` adds the block index to the transformer_options of its own attention call only.
"""

from __future__ import annotations

from .wan import self_attention_paths

BLOCK_MARK = "rtv_self_attention_block"
MARKED_FLAG = "rtv_self_attention_marked"


def _marked_forward(inner, block_index: int):
    def forward(x, freqs, transformer_options=None, **kwargs):
        marked = {**(transformer_options or {}), BLOCK_MARK: block_index}
        return inner(x, freqs, transformer_options=marked, **kwargs)

    return forward


def mark_self_attention(model) -> list[int]:
    """Install the markers on a ModelPatcher clone (once); returns the marked block indices."""
    diffusion_model = model.get_model_object("diffusion_model")
    paths = self_attention_paths(diffusion_model)
    to = model.model_options.setdefault("transformer_options", {})
    if not to.get(MARKED_FLAG):
        for path, block_index in paths:
            model.add_object_patch(path, _marked_forward(model.get_model_object(path), block_index))
        to[MARKED_FLAG] = True
    return [block for _, block in paths]
