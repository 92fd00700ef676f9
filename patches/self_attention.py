"""Wan video self-attention helpers: the call marker, and the q/k norm + RoPE of the patched forwards.

``optimized_attention_override`` sees self- and cross-attention alike, and shapes cannot tell them
apart (a 2-frame 16x16 latent has 512 tokens, the text length). An object patch of each block's
``self_attn.forward`` adds the block index to the transformer_options of its own attention call only.
"""

from __future__ import annotations

import torch
from comfy.ldm.flux.math import apply_rope1
from comfy.ldm.modules.attention import optimized_attention
from comfy.ldm.wan.model import WanSelfAttention

from ..kernels.qk_norm_rope import qk_norm_rope
from .wan import self_attention_paths

BLOCK_MARK = "rtv_self_attention_block"
MARKED_FLAG = "rtv_self_attention_marked"


def _marked_forward(inner, block_index: int):
    def forward(x, freqs, transformer_options=None, **kwargs):
        marked = {**(transformer_options or {}), BLOCK_MARK: block_index}
        return inner(x, freqs, transformer_options=marked, **kwargs)

    return forward


def keyword_marked_forward(inner, block_index: int):
    """Any attention module's forward that takes ``transformer_options`` by keyword (LTXV's ``attn1``),
    marked with its block index."""

    def forward(*args, transformer_options=None, **kwargs):
        marked = {**(transformer_options or {}), BLOCK_MARK: block_index}
        return inner(*args, transformer_options=marked, **kwargs)

    return forward


def projected_marked_forward(attn, block_index: int):
    """``WanSelfAttention.forward`` of ``attn``, marked, with its q/k norm + RoPE in one pass each."""

    def forward(x, freqs, transformer_options=None, **kwargs):
        q, k, v = project_self_attention(attn, x, freqs)
        return attn.o(self_attention_marked(attn, q, k, v, block_index, transformer_options or {}))

    return forward


def mark_self_attention(model) -> list[int]:
    """Install the markers on a ModelPatcher clone (once); returns the marked block indices.

    A stock ``WanSelfAttention`` not patched by anyone else gets the whole forward replaced (same
    math, the q/k norm + RoPE fused); any other forward is wrapped as it is."""
    diffusion_model = model.get_model_object("diffusion_model")
    paths = self_attention_paths(diffusion_model)
    to = model.model_options.setdefault("transformer_options", {})
    if not to.get(MARKED_FLAG):
        for path, block_index in paths:
            attn = model.get_model_object(path.removesuffix(".forward"))
            if path not in model.object_patches and type(attn).forward is WanSelfAttention.forward:
                model.add_object_patch(path, projected_marked_forward(attn, block_index))
            else:
                model.add_object_patch(path, _marked_forward(model.get_model_object(path), block_index))
        to[MARKED_FLAG] = True
    return [block for _, block in paths]


def _plain_rms_norm(norm) -> bool:
    """A ComfyUI RMSNorm whose weight is used as stored (no casting, LoRA or low-VRAM weight functions)."""
    return (
        isinstance(norm, torch.nn.Module)
        and "RMSNorm" in type(norm).__name__
        and getattr(norm, "weight", None) is not None
        and isinstance(getattr(norm, "eps", None), float)
        and not getattr(norm, "comfy_cast_weights", False)
        and not getattr(norm, "weight_function", None)
        and not getattr(norm, "bias_function", None)
    )


def norm_rope(norm, projection: torch.Tensor, freqs: torch.Tensor, heads: int, out: torch.Tensor | None = None):
    """Wan's ``apply_rope1(norm(projection).view(b, s, heads, d), freqs)`` as ``[B, S, C]``, into ``out``
    when given. A plain RMS norm takes one fused pass on CUDA (``kernels/qk_norm_rope``: one launch
    instead of six, the same rounding steps); anything else runs ComfyUI's modules."""
    if _plain_rms_norm(norm) and norm.weight.device == projection.device:
        return qk_norm_rope(projection, norm.weight, norm.eps, freqs, heads, out=out)
    b, s, c = projection.shape
    rotated = apply_rope1(norm(projection).view(b, s, heads, c // heads), freqs).view(b, s, c)
    if out is None:
        return rotated
    out.copy_(rotated)
    return out


def project_self_attention(attn, x, freqs, q_out=None, k_out=None):
    """A WanSelfAttention's q and k (normed and rotated, into ``q_out`` / ``k_out`` when given) and v."""
    heads = attn.num_heads
    q = norm_rope(attn.norm_q, attn.q(x), freqs, heads, out=q_out)
    k = norm_rope(attn.norm_k, attn.k(x), freqs, heads, out=k_out)
    return q, k, attn.v(x)


def self_attention_marked(attn, q, k, v, block_index: int, transformer_options: dict):
    """ComfyUI's attention of block ``block_index``'s self-attention, marked so overrides can tell it
    from cross-attention (the output before ``attn.o``)."""
    marked = {**transformer_options, BLOCK_MARK: block_index}
    return optimized_attention(q, k, v, heads=attn.num_heads, transformer_options=marked)
