"""RTV_MonarchAttention in a real server on the tiny Wan 2.1 model, sampled by core KSampler."""

import json
import re

import pytest
from e2e_support import monarch_node

pytestmark = pytest.mark.e2e

TINY_UNET = "rtv_tiny/wan2.1_t2v_1.3B_fp16.safetensors"
TINY_BLOCKS = 2
STEPS = 3
SUMMARY = re.compile(r"Monarch attention replaced (\d+) self-attention calls \((\d+) kept dense\) in (\d+) model calls")


def graph(width, height, length, monarch=None, counter_before=False, counter_after=False, steps=STEPS):
    """UNETLoader -> [counter] -> [RTV_MonarchAttention] -> [counter] -> KSampler -> SaveLatent-free output."""
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TINY_UNET, "weight_dtype": "default"}},
        "3": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a red fox", "tokens": 512}},
        "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
        "5": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": width, "height": height,
                                                                  "length": length, "batch_size": 1}},
    }
    model = ["1", 0]
    if counter_before:
        g["20"] = {"class_type": "RTVTest_CountAttentionCalls", "inputs": {"model": model, "label": "before"}}
        model = ["20", 0]
    if monarch is not None:
        g["2"] = monarch_node(model, **monarch)
        model = ["2", 0]
    if counter_after:
        g["21"] = {"class_type": "RTVTest_CountAttentionCalls", "inputs": {"model": model, "label": "after"}}
        model = ["21", 0]
    g["6"] = {"class_type": "KSampler", "inputs": {
        "model": model, "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0], "seed": 3,
        "steps": steps, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}
    g["7"] = {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "rtv_e2e/latent"}}
    if counter_before or counter_after:
        g["22"] = {"class_type": "RTVTest_ReportAttentionCalls", "inputs": {"latent": ["6", 0]}}
    return g


def sampled_latent(server, result):
    from safetensors.torch import load_file

    files = [server.workdir / "output" / f["subfolder"] / f["filename"] for f in result.outputs["7"]["latents"]]
    return load_file(str(files[0]))["latent_tensor"]


def last_summary(server):
    found = SUMMARY.findall(server.log_path.read_text())
    assert found, "no Monarch summary in the server log"
    return tuple(int(v) for v in found[-1])


def test_one_row_per_tile_reproduces_the_unpatched_model_and_default_differs(server):
    # 128x96 px -> 16x12 latent -> 8x6 tokens per frame; 21 frames -> 6 latent frames, so the default
    # exact local window (own frame +-1) does not cover every key frame.
    size = dict(width=128, height=96, length=21)
    dense = sampled_latent(server, server.run(graph(**size)))
    exact = sampled_latent(server, server.run(graph(**size, monarch={"h_split": 6})))
    replaced, kept_dense, model_calls = last_summary(server)
    default = sampled_latent(server, server.run(graph(**size, monarch={})))

    assert (exact - dense).abs().max() < 1e-4 * dense.abs().max()
    assert (default - dense).abs().max() > 1e-2 * dense.abs().max()
    assert model_calls >= STEPS
    assert replaced == TINY_BLOCKS * model_calls and kept_dense == 0


def test_chained_overrides_both_take_effect_and_cross_attention_is_never_replaced(server):
    # 256x256 px, 5 frames -> 2 latent frames x 16 x 16 tokens = 512 = the text length, so shapes
    # alone cannot tell self- from cross-attention here.
    size = dict(width=256, height=256, length=5, steps=2)
    before = server.run(graph(**size, monarch={}, counter_before=True))
    replaced, kept_dense, model_calls = last_summary(server)
    counts_before = json.loads(before.text("22")[0])
    after = server.run(graph(**size, monarch={}, counter_after=True))
    counts_after = json.loads(after.text("22")[0])

    assert replaced == TINY_BLOCKS * model_calls and kept_dense == 0
    # An override set before ours serves exactly the calls we do not replace: the cross-attention.
    assert counts_before["before"] == TINY_BLOCKS * model_calls
    # One set after ours sees every call and hands them to ours.
    assert counts_after["after"] == 2 * TINY_BLOCKS * model_calls


def test_dense_steps_and_blocks_keep_exact_attention_where_asked(server):
    server.run(graph(128, 96, 9, monarch={"dense_first_steps": 1, "dense_blocks": "1"}))
    replaced, kept_dense, model_calls = last_summary(server)
    per_step = model_calls // STEPS
    assert replaced == (STEPS - 1) * per_step * 1  # block 0 only, steps 1..2
    assert kept_dense == TINY_BLOCKS * model_calls - replaced


def test_report_error_reports_relative_error_per_block(server):
    server.run(graph(128, 96, 9, monarch={"report_error": True}))
    log = server.log_path.read_text()
    match = re.findall(r"relative L2 error vs dense per block: 0: ([0-9.]+), 1: ([0-9.]+)", log)
    assert match, "no per-block error report in the log"
    assert all(0.0 < float(v) < 2.0 for v in match[-1])
