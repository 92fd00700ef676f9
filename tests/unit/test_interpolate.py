"""Flow-based frame interpolation (kernel half of issue 8): in-between quality against exact
renders, batching over pairs and times, end points, determinism, graceful fallback.

Scenes (``synthetic_scenes.MovingObjectScene``): a textured disc translating up to 8 px per frame
over a textured background that pans a few px per frame, rendered analytically at any t, so
the in-between frames have exact ground truth.
"""

from __future__ import annotations

import pytest
import torch
from synthetic_scenes import MovingObjectScene, SinusoidTexture, psnr

from rtv.kernels.flow import bidirectional_flow
from rtv.kernels.interpolate import (
    HOLE_WEIGHT,
    OCCLUDED_WEIGHT,
    interpolate_frames,
    interpolate_from_flows,
    linear_blend,
    push_pull_fill,
    splat_intermediate_flow,
    visibility_weight,
)

MIDDLE_PSNR_DB = 32.0
GAIN_OVER_BLEND_DB = 8.0
TIMES = [0.25, 0.5, 0.75]
CPU_CUDA_AGREEMENT_DB = 50.0

SCENES = {
    "object (8, 0), pan (2, -1)": MovingObjectScene((8.0, 0.0), (2.0, -1.0), radius=48.0),
    "object (-5.6, 5.6), pan (-3, 2)": MovingObjectScene((-5.6, 5.6), (-3.0, 2.0), radius=48.0),
    "object (0, -8), pan (2.5, 1.5)": MovingObjectScene((0.0, -8.0), (2.5, 1.5), radius=48.0, shape="square"),
}


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def rendered() -> dict[str, torch.Tensor]:
    """Frames at t = 0, TIMES..., 1 for every scene: ``[2 + len(TIMES), 3, H, W]``."""
    return {name: scene.frames([0.0, *TIMES, 1.0]) for name, scene in SCENES.items()}


@pytest.fixture(scope="module")
def interpolated(rendered: dict[str, torch.Tensor]) -> torch.Tensor:
    """All scenes as one batch of pairs, all TIMES in one call: ``[scenes, T, 3, H, W]``."""
    a = torch.stack([frames[0] for frames in rendered.values()])
    b = torch.stack([frames[-1] for frames in rendered.values()])
    return interpolate_frames(a, b, TIMES)


@pytest.mark.parametrize("name", list(SCENES))
def test_middle_frame_psnr(name: str, rendered: dict[str, torch.Tensor], interpolated: torch.Tensor) -> None:
    """Middle frame >= 32 dB and >= 8 dB better than the linear blend 0.5 a + 0.5 b."""
    frames = rendered[name]
    middle = TIMES.index(0.5)
    truth = frames[1 + middle]
    ours = psnr(interpolated[list(SCENES).index(name), middle], truth)
    blend = psnr(0.5 * frames[0] + 0.5 * frames[-1], truth)
    assert ours >= MIDDLE_PSNR_DB, f"{name}: {ours:.2f} dB"
    assert ours >= blend + GAIN_OVER_BLEND_DB, f"{name}: {ours:.2f} dB vs blend {blend:.2f} dB"


@pytest.mark.parametrize("name", list(SCENES))
def test_every_time_beats_the_blend(
    name: str, rendered: dict[str, torch.Tensor], interpolated: torch.Tensor
) -> None:
    frames = rendered[name]
    baseline = linear_blend(frames[0:1], frames[-1:], TIMES)[0]
    for index in range(len(TIMES)):
        truth = frames[1 + index]
        ours = psnr(interpolated[list(SCENES).index(name), index], truth)
        assert ours >= MIDDLE_PSNR_DB
        assert ours >= psnr(baseline[index], truth) + GAIN_OVER_BLEND_DB


def test_batched_pairs_and_times_equal_one_by_one(
    rendered: dict[str, torch.Tensor], interpolated: torch.Tensor
) -> None:
    assert interpolated.shape == (len(SCENES), len(TIMES), 3, 256, 256)
    frames = rendered[list(SCENES)[1]]
    single = interpolate_frames(frames[0:1], frames[-1:], [0.5])
    assert torch.equal(single[0, 0], interpolated[1, TIMES.index(0.5)])


def test_end_points_are_the_inputs_and_result_is_deterministic() -> None:
    scene = MovingObjectScene((6.0, 2.0), (1.0, -1.0), radius=24.0, start=(60.0, 64.0), size=128)
    frames = scene.frames([0.0, 1.0])
    a, b = frames[0:1], frames[1:2]
    flow_ab, flow_ba = bidirectional_flow(a, b)
    out = interpolate_from_flows(a, b, flow_ab, flow_ba, [0.0, 0.4, 1.0])
    assert torch.equal(out[:, 0], a) and torch.equal(out[:, 2], b)
    again = interpolate_from_flows(a, b, flow_ab, flow_ba, [0.0, 0.4, 1.0])
    assert torch.equal(out, again)


def test_unrelated_frames_fall_back_to_crossfade() -> None:
    """A cut (two unrelated textures): no trustworthy flow, so the result is the plain blend."""
    a = SinusoidTexture.random(5).render_shifted((0.0, 0.0), 128).unsqueeze(0)
    b = SinusoidTexture.random(77).render_shifted((0.0, 0.0), 128).unsqueeze(0)
    out = interpolate_frames(a, b, [0.3, 0.5])
    assert torch.allclose(out, linear_blend(a, b, [0.3, 0.5]), atol=1e-6)


def test_times_are_validated() -> None:
    a = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_frames(a, a, [0.5, 1.5])
    with pytest.raises(ValueError, match="at least one"):
        interpolate_frames(a, a, [])
    with pytest.raises(ValueError, match="equal-shaped"):
        interpolate_from_flows(a, a[..., :8], torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16), 0.5)


def test_splat_of_a_translation_is_exact() -> None:
    """Uniform motion d: at time t every pixel came from q - t d, so F_t->0 = -t d; the strip that
    enters the frame from outside is not covered."""
    flow = torch.zeros(1, 2, 20, 30)
    flow[:, 0] = 4.0
    flow[:, 1] = -2.0
    visible = torch.ones(1, 1, 20, 30, dtype=torch.bool)
    flow_t0, source_visible, covered = splat_intermediate_flow(flow, visible, torch.tensor([0.5]))
    assert torch.equal(covered[0, 0, :19, 2:], torch.ones(19, 28, dtype=torch.bool))
    assert not bool(covered[0, 0, :, :2].any()) and not bool(covered[0, 0, 19:].any())
    inside = covered[0, 0]
    assert torch.equal(flow_t0[0, 0][inside], torch.full((int(inside.sum()),), -2.0))
    assert torch.equal(flow_t0[0, 1][inside], torch.full((int(inside.sum()),), 1.0))
    assert torch.equal(source_visible, covered)


def test_splat_zbuffer_prefers_pixels_seen_in_both_frames() -> None:
    """Two source pixels land on one target: the one visible in both frames wins even when the
    other lands exactly on it, whatever their order."""
    flow = torch.zeros(1, 2, 1, 4)
    flow[0, 0, 0, 0] = 4.0  # pixel 0 lands on pixel 2 at t = 0.5
    flow[0, 0, 0, 1] = 2.2  # pixel 1 lands on 2.1 (weight 0.9 at pixel 2)
    for visible_index, expected_flow in ((0, -2.0), (1, -1.1)):
        visible = torch.zeros(1, 1, 1, 4, dtype=torch.bool)
        visible[0, 0, 0, visible_index] = True
        visible[0, 0, 0, 3] = True
        flow_t0, source_visible, _ = splat_intermediate_flow(flow, visible, torch.tensor([0.5]))
        assert float(flow_t0[0, 0, 0, 2]) == pytest.approx(expected_flow)
        assert bool(source_visible[0, 0, 0, 2])


def test_push_pull_keeps_known_values_and_fills_holes_smoothly() -> None:
    values = torch.zeros(1, 2, 16, 16)
    values[:, 0] = 3.0
    values[:, 1] = -1.0
    known = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    known[..., 4:9, 5:12] = False
    holey = torch.where(known, values, 100.0)
    filled = push_pull_fill(holey, known)
    assert torch.allclose(filled, values)
    nothing = push_pull_fill(holey, torch.zeros_like(known))
    assert torch.equal(nothing, torch.zeros_like(values))


def test_visibility_weights_order() -> None:
    visible = torch.tensor([True, False, False])
    covered = torch.tensor([True, True, False])
    weights = visibility_weight(visible, covered)
    assert weights.tolist() == pytest.approx([1.0, OCCLUDED_WEIGHT, HOLE_WEIGHT])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CPU/CUDA agreement needs a CUDA device")
def test_cuda_interpolation_is_deterministic_and_matches_cpu(
    rendered: dict[str, torch.Tensor], interpolated: torch.Tensor
) -> None:
    """The splatting z-buffer is a scatter-max (order-independent), so CUDA repeats bit for bit."""
    a = torch.stack([frames[0] for frames in rendered.values()]).cuda()
    b = torch.stack([frames[-1] for frames in rendered.values()]).cuda()
    first = interpolate_frames(a, b, TIMES)
    assert torch.equal(first, interpolate_frames(a, b, TIMES))
    # Flows differ from the CPU's by ~1e-5 px, which can flip a z-buffer tie at a few pixels.
    assert psnr(first.cpu(), interpolated) > CPU_CUDA_AGREEMENT_DB
