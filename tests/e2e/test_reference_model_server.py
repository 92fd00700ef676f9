"""The reference model through the real server (issue 10): stock UNETLoader + VAELoader load its
weights (the smoke-trained files, and the shipped trained ones), RTV_ReferencePrompt conditions it,
and a stock KSampler + VAEDecode, or the shipped streaming workflow, make a video."""

import json

import pytest
from comfy_host import REPO, webp_frame_count, webp_frames
from reference_smoke import smoke_weights
from reference_tracking import check_video
from workflow_format import ui_to_api

from rtv.kernels.reference_prompts import PROMPT_TEXTS, UNCONDITIONAL

pytestmark = pytest.mark.e2e

FRAMES = 9
SIZE = 32  # the smoke model's training resolution


@pytest.fixture(scope="module")
def smoke():
    return smoke_weights()


def reference_graph(smoke, prompt=PROMPT_TEXTS[0], seed=3):
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": smoke["dit_name"], "weight_dtype": "default"}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": smoke["vae_name"]}},
        "3": {"class_type": "RTV_ReferencePrompt", "inputs": {"prompt": prompt}},
        "4": {"class_type": "RTV_ReferencePrompt", "inputs": {"prompt": UNCONDITIONAL}},
        "5": {"class_type": "EmptyHunyuanLatentVideo",
              "inputs": {"width": SIZE, "height": SIZE, "length": FRAMES, "batch_size": 1}},
        "6": {"class_type": "KSampler",
              "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0],
                         "seed": seed, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "simple",
                         "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["2", 0]}},
        "8": {"class_type": "SaveAnimatedWEBP",
              "inputs": {"images": ["7", 0], "filename_prefix": "rtv_reference/smoke", "fps": 16.0,
                         "lossless": False, "quality": 80, "method": "default"}},
    }  # fmt: skip


def test_prompt_node_is_listed_for_the_reference_model_only(pack_nodes):
    info = pack_nodes["RTV_ReferencePrompt"]
    assert info["display_name"] == "Reference Prompt (RTV)"
    assert info["category"] == "RealtimeVideo/reference"
    options, extra = info["input"]["required"]["prompt"][1]["options"], info["input"]["required"]["prompt"][1]
    assert options == [*PROMPT_TEXTS, UNCONDITIONAL]
    assert "only" in extra["tooltip"].lower() and "reference model" in extra["tooltip"].lower()


def test_stock_loaders_and_ksampler_make_a_video_with_the_reference_model(server, smoke):
    result = server.run(reference_graph(smoke))
    assert webp_frame_count(result.files("8")[0]) == FRAMES


def test_shipped_reference_workflow_streams_the_prompted_object(server, object_info):
    """workflows/reference_model_streaming_monarch.json as shipped (the trained weights in
    reference_model/, Monarch attention, three streamed chunks): 81 frames whose first chunk shows the
    prompt's object in its colour, moving its way (tools/reference_tracking.py)."""
    workflow = json.loads((REPO / "workflows" / "reference_model_streaming_monarch.json").read_text())
    prompt = ui_to_api(workflow, object_info)
    sampler = next(n["inputs"] for n in prompt.values() if n["class_type"] == "RTV_StreamingSampler")
    text = next(n["inputs"]["prompt"] for n in prompt.values() if n["inputs"].get("prompt") != UNCONDITIONAL
                and n["class_type"] == "RTV_ReferencePrompt")
    result = server.run(prompt)
    save = next(nid for nid, n in prompt.items() if n["class_type"] == "SaveAnimatedWEBP")
    frames = webp_frames(result.files(save)[0])
    assert frames.shape == (sampler["total_frames"], sampler["height"], sampler["width"], 3)
    first_chunk = check_video(frames[: sampler["chunk_frames"]], text)
    assert first_chunk.colour_ok and first_chunk.motion_ok, first_chunk
