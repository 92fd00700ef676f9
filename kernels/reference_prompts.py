"""Prompt classes of the project's own small reference video model, and their conditioning tensors.

The reference model (tools/train_reference.py) is a tiny Wan 2.1 T2V DiT trained on procedural
videos (tools/procedural_video.py). It has no text encoder: a prompt class is a short sentence of
words from a fixed vocabulary, and each word has a fixed embedding vector of UMT5-XXL's width, so
the conditioning has exactly Wan's text shape [1, 512, 4096] and the stock Wan loaders, samplers and
our patches see an ordinary Wan 2.1 T2V model. The trainer and the ``RTV_ReferencePrompt`` node both
call ``prompt_conditioning``: the same class gives the same tensor, bit for bit.

Word vectors are built word by word (compositional, like real text embeddings: "red" means the same
in every class), mutually orthonormal, scaled to unit RMS per element, from a fixed seed; tokens
after the last word are zero (Wan's padding), and the unconditional prompt (for the negative of
classifier-free guidance) is all zeros, which is what the trainer drops the conditioning to.

No ComfyUI import: the generator, the tracker and the trainer use this module on a bare machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

TEXT_DIM = 4096
"""Wan's text_embedding input width (UMT5-XXL hidden size): fixed by the Wan 2.1 architecture."""
TEXT_TOKENS = 512
"""UMT5 pads every prompt to 512 tokens in ComfyUI; the model is trained with the same length."""
VOCABULARY_SEED = 20251010
UNCONDITIONAL = "none (unconditional)"

# Class colours in RGB [0, 1]: saturated and far apart in hue, so colour segmentation finds them.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.10),
    "green": (0.15, 0.80, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
}
SHAPES = ("square", "circle", "triangle")
DIRECTIONS: dict[str, tuple[float, float]] = {
    # image axes: x to the right, y downwards
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
ROTATES = "rotates"


@dataclass(frozen=True)
class PromptClass:
    colour: str
    shape: str
    motion: str
    """A key of DIRECTIONS (the object travels that way) or ROTATES (it spins in place)."""

    @property
    def text(self) -> str:
        return f"{self.colour} {self.shape} {self.motion}" if self.motion == ROTATES else (
            f"{self.colour} {self.shape} moves {self.motion}")

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split())


# Every colour with every shape once; motions spread over the table (rotation only for shapes whose
# rotation is visible). The class fully decides the main object's colour, shape and motion.
PROMPT_CLASSES: tuple[PromptClass, ...] = (
    PromptClass("red", "square", "right"),
    PromptClass("red", "circle", "up"),
    PromptClass("red", "triangle", ROTATES),
    PromptClass("green", "square", "left"),
    PromptClass("green", "circle", "down"),
    PromptClass("green", "triangle", "right"),
    PromptClass("blue", "square", ROTATES),
    PromptClass("blue", "circle", "left"),
    PromptClass("blue", "triangle", "up"),
    PromptClass("yellow", "square", "down"),
    PromptClass("yellow", "circle", "right"),
    PromptClass("yellow", "triangle", "left"),
)
PROMPT_TEXTS: tuple[str, ...] = tuple(c.text for c in PROMPT_CLASSES)
VOCABULARY: tuple[str, ...] = (*COLOURS, *SHAPES, "moves", ROTATES, *DIRECTIONS)


def prompt_class(text: str) -> PromptClass:
    for c in PROMPT_CLASSES:
        if c.text == text:
            return c
    raise ValueError(f"unknown reference prompt {text!r}; choose one of: {', '.join(PROMPT_TEXTS)}")


def word_vectors() -> dict[str, torch.Tensor]:
    return {word: v.clone() for word, v in _word_vectors().items()}


@lru_cache(maxsize=1)
def _word_vectors() -> dict[str, torch.Tensor]:
    """One float32 vector of TEXT_DIM per vocabulary word: orthonormal (Gram-Schmidt in float64 on
    seeded Gaussians, so no LAPACK sign convention is involved), scaled to unit RMS per element."""
    g = torch.Generator().manual_seed(VOCABULARY_SEED)
    raw = torch.randn((len(VOCABULARY), TEXT_DIM), generator=g, dtype=torch.float64)
    basis: list[torch.Tensor] = []
    for row in raw:
        for b in basis:
            row = row - (row @ b) * b
        basis.append(row / row.norm())
    scale = TEXT_DIM**0.5
    return {word: (b * scale).to(torch.float32) for word, b in zip(VOCABULARY, basis)}


def prompt_conditioning(text: str, tokens: int = TEXT_TOKENS) -> torch.Tensor:
    """The conditioning tensor [1, tokens, TEXT_DIM] of a prompt class (or of UNCONDITIONAL)."""
    cond = torch.zeros((1, tokens, TEXT_DIM), dtype=torch.float32)
    if text == UNCONDITIONAL:
        return cond
    vectors = _word_vectors()
    for i, word in enumerate(prompt_class(text).words):
        cond[0, i] = vectors[word]
    return cond


def class_conditioning_table(tokens: int = TEXT_TOKENS) -> torch.Tensor:
    """[len(PROMPT_CLASSES) + 1, tokens, TEXT_DIM]: every class in PROMPT_CLASSES order, then the
    unconditional prompt (index len(PROMPT_CLASSES)), as the trainer indexes it."""
    rows = [prompt_conditioning(t, tokens) for t in (*PROMPT_TEXTS, UNCONDITIONAL)]
    return torch.cat(rows, dim=0)
