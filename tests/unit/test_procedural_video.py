"""Procedural training videos of the reference model (issue 10 item 1): deterministic, the prompt
class decides the main object's colour and motion, and the scenes have occlusion, objects entering
and leaving the frame, and a moving camera."""

from __future__ import annotations

import pytest
import torch
from procedural_video import OBJECTS, generate_clips, sample_scenes

from rtv.kernels.reference_prompts import COLOURS, PROMPT_CLASSES

FRAMES, HEIGHT, WIDTH = 17, 48, 64


@pytest.fixture(scope="module")
def scenes(one_cpu_thread):
    classes = [c for c in range(len(PROMPT_CLASSES)) for _ in range(4)]
    seeds = [s for _ in range(len(PROMPT_CLASSES)) for s in range(4)]
    clips, layers = generate_clips(classes, seeds, FRAMES, HEIGHT, WIDTH, return_layers=True, batch=16)
    return classes, seeds, clips, layers


def test_clips_have_the_requested_shape_and_range(scenes):
    _, _, clips, _ = scenes
    assert clips.shape == (len(PROMPT_CLASSES) * 4, FRAMES, HEIGHT, WIDTH, 3)
    assert clips.dtype == torch.float32
    assert 0.0 <= float(clips.min()) and float(clips.max()) <= 1.0


def test_same_class_and_seed_give_the_same_clip_in_any_batch(scenes, one_cpu_thread):
    classes, seeds, clips, _ = scenes
    again = generate_clips(classes[5:8], seeds[5:8], FRAMES, HEIGHT, WIDTH, batch=1)
    assert torch.equal(again, clips[5:8])


def test_seed_changes_the_scene_but_not_the_class_colour(scenes):
    classes, _, clips, _ = scenes
    assert not torch.equal(clips[0], clips[1])  # class 0, seeds 0 and 1
    params = sample_scenes(classes, list(range(len(classes))))
    for i, c in enumerate(classes):
        hue = torch.tensor(COLOURS[PROMPT_CLASSES[c].colour])
        main = params.colour[i, 0]
        assert torch.allclose(main / main.max(), hue / hue.max(), atol=1e-6)


def test_class_decides_the_main_motion():
    classes = list(range(len(PROMPT_CLASSES)))
    for seed in range(3):
        params = sample_scenes(classes, [seed] * len(classes))
        for c, pc in enumerate(PROMPT_CLASSES):
            velocity, spin = params.velocity[c, 0], float(params.spin[c, 0])
            if pc.motion == "rotates":
                assert float(velocity.norm()) == 0 and abs(spin) >= 0.03
            else:
                direction = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[pc.motion]
                assert float(velocity @ torch.tensor(direction, dtype=torch.float32)) > 0.012


def test_scenes_have_occlusion_objects_entering_or_leaving_and_camera_motion(scenes):
    _, _, _, layers = scenes
    coverage, visible_main = layers["coverage"], layers["visible_main"]
    assert coverage.shape[1] == OBJECTS
    occluded = (visible_main < 0.9 * coverage[:, 0]).any(1)  # a distractor in front hides 10%+ of it
    distractors = coverage[:, 1:]
    in_frame = distractors > 5
    crosses_edge = (in_frame.any(-1) & ~in_frame.all(-1)) | ((distractors[..., 0] - distractors[..., -1]).abs() > 50)
    assert occluded.float().mean() > 0.15
    assert crosses_edge.any(-1).float().mean() > 0.15  # in 17 frames; training clips are twice as long
    params = sample_scenes([0] * 8, list(range(8)))
    assert (params.pan.norm(dim=-1) > 0).all() and (params.zoom_rate.abs() > 0).all()


def test_a_window_of_a_longer_scene_is_those_frames_of_the_whole_scene(one_cpu_thread):
    """The trainer's windowed clips: frames 20-52 of an 81-frame scene, rendered on their own."""
    whole = generate_clips([0, 7], [3, 4], frames=81, height=32, width=48)
    window = generate_clips([0, 7], [3, 4], frames=33, height=32, width=48, scene_frames=81, first_frames=[20, 40])
    torch.testing.assert_close(window[0], whole[0, 20:53], rtol=0, atol=1e-5)
    torch.testing.assert_close(window[1], whole[1, 40:73], rtol=0, atol=1e-5)
    assert not torch.allclose(window[0], whole[0, :33])  # the scene moves: the offset matters
