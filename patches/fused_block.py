"""The Wan transformer block with its norm and residual steps fused.

Two reasons: the few-step causal sampler is bound by the host thread, where every kernel of a block
costs tens of microseconds of Python and dispatch (bench/host_probe.py); and at full sequence length
(32760 tokens at 480p) each elementwise pass moves ~100 MB. ComfyUI's ``WanAttentionBlock.forward``
spends 10 kernels on modulation, LayerNorms and residuals around its attention and MLP calls; this
replacement runs the same steps as 3 passes of ``kernels/wan_block.norm_step`` (Triton on CUDA, and
on the CPU the very ops ComfyUI runs, so results there are bit-identical) and calls the block's own
attention modules, patched or not, and the MLP (on CUDA with its GELU in the first product's
epilogue, ``block_mlp``). Blocks or calls it does not cover (per-frame timesteps, weights cast or
patched per call) run ComfyUI's forward.
"""

from __future__ import annotations

import comfy.model_management
import comfy.ops
import torch
from comfy.ldm.wan.model import WanAttentionBlock

from ..kernels.wan_block import norm_step

# transformer_options entry: the BlockGraphs (patches/block_graphs.py) that replay the blocks, if any
BLOCK_GRAPHS_KEY = "rtv_block_graphs"


def _plain_norm(norm, affine: bool) -> bool:
    if not isinstance(norm, torch.nn.LayerNorm) or not isinstance(norm.eps, float):
        return False
    if getattr(norm, "comfy_cast_weights", False) or getattr(norm, "weight_function", None) or getattr(norm, "bias_function", None):
        return False
    return (norm.weight is not None and norm.bias is not None) if affine else norm.weight is None


def fusable_block(block) -> bool:
    """A block whose norms are the stock Wan ones (the steps the fused path implements)."""
    norm3 = block.norm3
    return (
        _plain_norm(block.norm1, affine=False)
        and _plain_norm(block.norm2, affine=False)
        and (isinstance(norm3, torch.nn.Identity) or _plain_norm(norm3, affine=True))
        and isinstance(getattr(block, "modulation", None), torch.nn.Parameter)
    )


def fusable_call(block, e) -> bool:
    """One timestep per sample (``e`` [B, 1, 6, C]) on a stock block: the fused steps apply."""
    return e.ndim == 4 and e.shape[1] == 1 and fusable_block(block)


def block_modulation(block, x, e):
    """The block's six modulation vectors for this call (shift, scale, gate of attention, then of the MLP)."""
    modulation = comfy.model_management.cast_to(block.modulation, dtype=x.dtype, device=x.device)
    return (modulation.unsqueeze(0) + e).unbind(2)


def fused_block_input(block, x, e):
    """The self-attention's input: LayerNorm of the residual stream ``x`` (contiguous), shifted and scaled."""
    return norm_step(x, block.norm1.eps, shift=e[0], scale=e[1])[1]


def stock_tanh_mlp(ffn, dtype: torch.dtype, device: torch.device) -> bool:
    """Wan's stock MLP (Linear, tanh GELU, Linear) whose first weights are used as stored for inputs of
    ``dtype`` on ``device``: not cast or patched per call (low-VRAM loading, LoRA weight functions), not
    another node's Linear class (quantised formats)."""
    if not (isinstance(ffn, torch.nn.Sequential) and len(ffn) == 3):
        return False
    linear, gelu = ffn[0], ffn[1]
    if not (type(gelu) is torch.nn.GELU and gelu.approximate == "tanh"):
        return False
    if type(linear).forward is not comfy.ops.disable_weight_init.Linear.forward or linear.bias is None:
        return False
    if linear.comfy_cast_weights or linear.weight_function or linear.bias_function:
        return False
    weight, bias = linear.weight, linear.bias
    return (
        type(weight) is torch.nn.Parameter
        and weight.dtype == bias.dtype == dtype
        and weight.device == bias.device == device
    )


def gelu_in_epilogue(ffn, h) -> bool:
    """The MLP's first product can take the GELU in cuBLASLt's epilogue: 16-bit CUDA activations, a
    :func:`stock_tanh_mlp`, and not under torch.compile (which fuses on its own)."""
    return (
        h.is_cuda
        and h.dtype in (torch.float16, torch.bfloat16)
        and not torch.compiler.is_compiling()
        and stock_tanh_mlp(ffn, h.dtype, h.device)
    )


def block_mlp(ffn, h):
    """The block's MLP. Where :func:`gelu_in_epilogue` holds, the GELU runs in the first product's
    epilogue: one pass over the [tokens, ffn_dim] activations fewer (0.13 of 2.72 ms per 1.3B block at
    480p on an H100, bench/ffn_epilogue.py). That epilogue is the tanh GELU Wan uses, applied before
    rounding to the activations' dtype (ComfyUI rounds first): a relative difference of ~3e-3."""
    if not gelu_in_epilogue(ffn, h):
        return ffn(h)
    comfy.model_management.throw_exception_if_processing_interrupted()  # as ComfyUI's Linear does
    linear = ffn[0]
    flat = h.reshape(-1, h.shape[-1])
    hidden = torch._addmm_activation(linear.bias, flat, linear.weight.t(), use_gelu=True)
    return ffn[2](hidden.view(*h.shape[:-1], hidden.shape[-1]))


def fused_block_output(block, x, e, y, cross_attention, out=None):
    """The rest of the block after self-attention output ``y``; the new residual stream (into ``out``)."""
    norm3 = block.norm3
    if isinstance(norm3, torch.nn.Identity):
        x = torch.addcmul(x, y, e[2])
        h = x
    else:
        x, h = norm_step(x, norm3.eps, residual=y, gate=e[2], weight=norm3.weight, bias=norm3.bias)
    x, h = norm_step(x, block.norm2.eps, residual=cross_attention(h), shift=e[3], scale=e[4])
    return torch.addcmul(x, block_mlp(block.ffn, h), e[5], out=out)


def fused_block_steps(block, x, e, self_attention, cross_attention):
    """ComfyUI's block body with the norm and residual steps fused; ``self_attention(h)`` and
    ``cross_attention(h)`` run the attentions (the block's own modules, or a sequence-parallel
    version). Needs ``fusable_call(block, e)``."""
    e = block_modulation(block, x, e)
    x = x.contiguous()
    return fused_block_output(block, x, e, self_attention(fused_block_input(block, x, e)), cross_attention)


def fused_block_forward(block, index: int | None = None):
    """Replacement for ``block.forward`` (a ``WanAttentionBlock``, number ``index``), same signature and
    result. Under the causal sampler's CUDA graphs (``BLOCK_GRAPHS_KEY``) the block replays its graphs."""
    original = type(block).forward

    def forward(x, e, freqs, context, context_img_len=257, transformer_options={}):  # noqa: B006 - ComfyUI's signature
        # checked per call: ComfyUI's low-VRAM loading and LoRA weight functions change the norms after patching
        if not fusable_call(block, e):  # e.g. per-frame timesteps: ComfyUI's repeat_e path
            return original(block, x, e, freqs, context, context_img_len=context_img_len,
                            transformer_options=transformer_options)  # fmt: skip
        graphs = transformer_options.get(BLOCK_GRAPHS_KEY)
        if graphs is not None and index is not None:
            out = graphs.forward(index, block, x, e, freqs, context, context_img_len, transformer_options)
            if out is not None:
                return out
        return fused_block_steps(
            block, x, e,
            lambda h: block.self_attn(h, freqs, transformer_options=transformer_options),
            lambda h: block.cross_attn(h, context, context_img_len=context_img_len,
                                       transformer_options=transformer_options),
        )  # fmt: skip

    return forward


def fuse_wan_blocks(model) -> int:
    """Object patches on a ModelPatcher clone: each stock ``WanAttentionBlock`` in ``blocks`` that no one
    else patched runs :func:`fused_block_forward`. Returns how many blocks were patched."""
    blocks = model.get_model_object("diffusion_model").blocks
    patched = 0
    for i, block in enumerate(blocks):
        path = f"diffusion_model.blocks.{i}.forward"
        if path in model.object_patches or type(block).forward is not WanAttentionBlock.forward:
            continue
        model.add_object_patch(path, fused_block_forward(block, i))
        patched += 1
    return patched
