"""The automatic recognisability check of the reference model (issue 10, Must show): it passes on
the generator's own clips for nearly every seed of every class, and fails on noise and on a clip of
another class."""

from __future__ import annotations

import pytest
import torch
from procedural_video import generate_clips
from reference_tracking import check_video, recognisability

from rtv.kernels.reference_prompts import PROMPT_TEXTS

SEEDS = 10
FRAMES = 17  # shorter than training clips (33) to keep the suite fast; thresholds are per frame


@pytest.fixture(scope="module")
def generated(one_cpu_thread):
    classes = [c for c in range(len(PROMPT_TEXTS)) for _ in range(SEEDS)]
    seeds = [1000 + s for _ in PROMPT_TEXTS for s in range(SEEDS)]
    return classes, generate_clips(classes, seeds, FRAMES, batch=20)


def test_generated_clips_pass_for_at_least_90_percent_of_seeds_per_class(generated):
    classes, clips = generated
    result = recognisability(clips, [PROMPT_TEXTS[c] for c in classes])
    assert min(result["per_prompt"].values()) >= 0.9, result["per_prompt"]
    assert result["rate"] >= 0.95


def test_noise_fails():
    g = torch.Generator().manual_seed(0)
    for prompt in PROMPT_TEXTS[:4]:
        assert not check_video(torch.rand((FRAMES, 96, 128, 3), generator=g), prompt).passed
    flat = torch.full((FRAMES, 96, 128, 3), 0.5)
    assert not check_video(flat, PROMPT_TEXTS[0]).passed


def test_a_clip_fails_against_the_other_classes(generated):
    classes, clips = generated
    for c in (0, 2, 4):
        clip = next(clip for k, clip in zip(classes, clips) if k == c and check_video(clip, PROMPT_TEXTS[c]).passed)
        others = [p for i, p in enumerate(PROMPT_TEXTS) if i != c]
        assert not any(check_video(clip, p).passed for p in others)
