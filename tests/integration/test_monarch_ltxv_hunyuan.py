"""The Monarch patch on LTX-Video and HunyuanVideo (1.0 and 1.5), sampled in process by ComfyUI's own sampler.

Tiny random-weight DiTs of both families go through ComfyUI's real detection and loader. With one
token row per tile (h_split = rows) Monarch attention is exactly softmax attention, so a patched
model must reproduce the unpatched one, which proves that the hook finds every video self-attention
and places its tokens right, including the tokens off the grid, which stay exact: HunyuanVideo's
text (with and without a padding mask) and reference latent, HunyuanVideo 1.5's glyph text and vision tokens,
LTXV's guide frames.
"""

import comfy.sample
import comfy.sd
import pytest
import torch
from tiny_models import (
    TINY_HUNYUAN_DOUBLE,
    TINY_HUNYUAN_SINGLE,
    TINY_LTXV_LAYERS,
    hunyuan_conditioning,
    hunyuan_video15_conditioning,
    ltxv_conditioning,
)

from rtv.patches.attention import MonarchSettings, apply_monarch_attention

LTXV_LATENT = (1, 128, 3, 4, 6)  # 3 latent frames of 4 x 6 tokens (patch 1)
HUNYUAN_LATENT = (1, 16, 3, 8, 12)  # 3 latent frames of 4 x 6 tokens (patch 1 x 2 x 2)
HUNYUAN15_LATENT = (1, 32, 3, 4, 6)  # 3 latent frames of 4 x 6 tokens (patch 1)
ROWS = 4
STEPS = 2


def _sample(model, shape, positive, negative, seed=5):
    latent = torch.zeros(shape)
    noise = comfy.sample.prepare_noise(latent, seed)
    return comfy.sample.sample(model, noise, STEPS, 2.0, "euler", "simple", positive, negative, latent, seed=seed,
                               disable_pbar=True)  # fmt: skip


def _stats(model):
    return model.model_options["transformer_options"]["optimized_attention_override"].__self__.stats


def _assert_exact_and_replaced(model, shape, positive, negative, self_attention_per_call):
    dense = _sample(model, shape, positive, negative)
    exact = apply_monarch_attention(model, MonarchSettings(h_split=ROWS))
    exact_out = _sample(exact, shape, positive, negative)
    stats = _stats(exact)
    plain = _sample(apply_monarch_attention(model, MonarchSettings(exact_local=-1)), shape, positive, negative)
    assert torch.allclose(exact_out, dense, rtol=1e-4, atol=1e-4 * dense.abs().max().item())
    assert (plain - dense).abs().max() > 1e-3 * dense.abs().max()
    assert stats.model_calls >= STEPS and stats.dense == 0
    assert stats.replaced == self_attention_per_call * stats.model_calls


def test_ltxv_one_row_per_tile_is_exact_and_every_self_attention_is_replaced(tiny_ltxv):
    _assert_exact_and_replaced(tiny_ltxv, LTXV_LATENT, ltxv_conditioning(0), ltxv_conditioning(1), TINY_LTXV_LAYERS)


def test_ltxv_guide_frames_stay_exact(tiny_ltxv):
    """The last latent frame is a guide (``keyframe_idxs`` moves its tokens elsewhere in time): the
    grid is the first two frames, the guide's tokens are extra keys and dense queries."""
    guide_tokens = ROWS * 6
    rows, cols = torch.meshgrid(torch.arange(ROWS), torch.arange(6), indexing="ij")
    coords = torch.stack([torch.zeros(guide_tokens), 32.0 * rows.flatten(), 32.0 * cols.flatten()])[None]

    def guided(seed):
        cond = ltxv_conditioning(seed)
        cond[0][1]["keyframe_idxs"] = coords
        return cond

    _assert_exact_and_replaced(tiny_ltxv, LTXV_LATENT, guided(0), guided(1), TINY_LTXV_LAYERS)


def test_hunyuan_video_one_row_per_tile_is_exact_with_its_text_exact(tiny_hunyuan):
    _assert_exact_and_replaced(tiny_hunyuan, HUNYUAN_LATENT, hunyuan_conditioning(0), hunyuan_conditioning(1),
                               TINY_HUNYUAN_DOUBLE + TINY_HUNYUAN_SINGLE)  # fmt: skip


def test_hunyuan_video_padded_text_and_reference_latent_stay_exact(tiny_hunyuan):
    """Padded text tokens (an additive mask) are dropped from the extra keys; a reference latent's tokens
    (I2V, in front of the video) are extra keys too. Different mask lengths keep cond and uncond in two
    model calls (ComfyUI 0.3.75 builds HunyuanVideo's text mask with batch 1)."""
    positive = hunyuan_conditioning(0, tokens=8, padded_tokens=4)
    negative = hunyuan_conditioning(1, tokens=6, padded_tokens=2)
    reference = torch.randn(1, 16, 1, 8, 12, generator=torch.Generator().manual_seed(3))
    for cond in (positive, negative):
        cond[0][1]["ref_latent"] = reference
    _assert_exact_and_replaced(tiny_hunyuan, HUNYUAN_LATENT, positive, negative, TINY_HUNYUAN_DOUBLE + TINY_HUNYUAN_SINGLE)


def test_hunyuan_video15_one_row_per_tile_is_exact_with_glyph_text_and_vision_tokens_exact(tiny_hunyuan15):
    """HunyuanVideo 1.5 puts byT5 glyph tokens and SigLIP vision tokens (I2V) beside the Qwen text: all after
    the video, so all extra keys."""
    from types import SimpleNamespace

    vision = SimpleNamespace(last_hidden_state=torch.randn(1, 5, 1152, generator=torch.Generator().manual_seed(4)))

    def conditioning(seed):
        cond = hunyuan_video15_conditioning(seed, tokens=8, byt5_tokens=3)
        cond[0][1]["clip_vision_output"] = vision
        return cond

    _assert_exact_and_replaced(tiny_hunyuan15, HUNYUAN15_LATENT, conditioning(0), conditioning(1), TINY_HUNYUAN_DOUBLE)


def test_dense_blocks_count_hunyuan_single_blocks_after_the_double_ones(tiny_hunyuan):
    """Block numbers: double blocks 0.., then single blocks; the token refiner is never touched."""
    last_single = TINY_HUNYUAN_DOUBLE + TINY_HUNYUAN_SINGLE - 1
    patched = apply_monarch_attention(tiny_hunyuan, MonarchSettings(dense_blocks=frozenset({0, last_single})))
    _sample(patched, HUNYUAN_LATENT, hunyuan_conditioning(0), hunyuan_conditioning(1))
    stats = _stats(patched)
    assert stats.dense == 2 * stats.model_calls
    assert stats.replaced == (TINY_HUNYUAN_DOUBLE + TINY_HUNYUAN_SINGLE - 2) * stats.model_calls


def test_a_split_that_does_not_fit_says_what_to_change_in_the_family_s_units(tiny_ltxv, tiny_hunyuan, tiny_hunyuan15):
    with pytest.raises(ValueError, match=r"h_split=3 does not divide the 4 token rows.*pixels / 32"):
        _sample(apply_monarch_attention(tiny_ltxv, MonarchSettings(h_split=3)), LTXV_LATENT, ltxv_conditioning(0),
                ltxv_conditioning(1))  # fmt: skip
    with pytest.raises(ValueError, match=r"tile_frames=2 does not divide the 3 latent frames.*8\*k\*tile_frames\+1"):
        _sample(apply_monarch_attention(tiny_ltxv, MonarchSettings(tile_frames=2)), LTXV_LATENT, ltxv_conditioning(0),
                ltxv_conditioning(1))  # fmt: skip
    with pytest.raises(ValueError, match=r"w_split=4 does not divide the 6 token columns.*pixels / 16"):
        _sample(apply_monarch_attention(tiny_hunyuan, MonarchSettings(w_split=4)), HUNYUAN_LATENT,
                hunyuan_conditioning(0), hunyuan_conditioning(1))  # fmt: skip
    with pytest.raises(ValueError, match=r"h_split=3 does not divide the 4 token rows.*pixels / 16"):
        _sample(apply_monarch_attention(tiny_hunyuan15, MonarchSettings(h_split=3)), HUNYUAN15_LATENT,
                hunyuan_video15_conditioning(0), hunyuan_video15_conditioning(1))  # fmt: skip
