"""Conditioning of the reference model's prompt classes: Wan's text shape, fixed, compositional."""

import torch

from rtv.kernels.reference_prompts import (
    PROMPT_TEXTS,
    TEXT_DIM,
    TEXT_TOKENS,
    UNCONDITIONAL,
    class_conditioning_table,
    prompt_conditioning,
    word_vectors,
)


def test_conditioning_has_wan_text_shape_with_words_then_zero_padding():
    cond = prompt_conditioning("red square moves right")
    assert cond.shape == (1, TEXT_TOKENS, TEXT_DIM) and cond.dtype == torch.float32
    assert (cond[0, :4].norm(dim=-1) > 0).all() and not cond[0, 4:].any()
    assert not prompt_conditioning(UNCONDITIONAL).any()


def test_words_are_orthonormal_up_to_scale_and_shared_between_classes():
    vectors = torch.stack(list(word_vectors().values()))
    gram = vectors @ vectors.T / TEXT_DIM
    assert torch.allclose(gram, torch.eye(len(vectors)), atol=1e-5)
    a, b = prompt_conditioning("red square moves right"), prompt_conditioning("red circle moves up")
    assert torch.equal(a[0, 0], b[0, 0])  # "red"


def test_every_class_is_distinct_and_the_table_is_in_class_order():
    table = class_conditioning_table()
    assert table.shape == (len(PROMPT_TEXTS) + 1, TEXT_TOKENS, TEXT_DIM)
    for i, text in enumerate(PROMPT_TEXTS):
        assert torch.equal(table[i], prompt_conditioning(text)[0])
    distances = torch.cdist(table[:-1, :4].flatten(1), table[:-1, :4].flatten(1))
    assert (distances + torch.eye(len(PROMPT_TEXTS)) * 1e9).min() > 1.0
    assert torch.equal(prompt_conditioning(PROMPT_TEXTS[3]), prompt_conditioning(PROMPT_TEXTS[3]))
