"""The pack inside a real ComfyUI server: registration, schemas, validation errors, resilience."""

import re

import pytest
from comfy_host import PromptError
from e2e_support import monarch_node

pytestmark = pytest.mark.e2e

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def test_every_pack_node_is_listed_with_category_tooltips_and_rtv_name(pack_nodes):
    assert "RTV_MonarchAttention" in pack_nodes
    for name, info in pack_nodes.items():
        assert name.startswith("RTV_"), name
        assert info["display_name"].endswith("(RTV)"), info["display_name"]
        assert info["category"].startswith("RealtimeVideo/"), info["category"]
        assert info["description"], f"{name} has no description"
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_test_only_nodes_are_not_in_the_pack(pack_nodes):
    assert not [n for n in pack_nodes if n.startswith("RTVTest_")]


def _tiny_t2v(**monarch):
    prompt = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "rtv_tiny/wan2.1_t2v_1.3B_fp16.safetensors",
                                                     "weight_dtype": "default"}},
        "2": monarch_node(["1", 0], **monarch),
        "3": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a cat", "tokens": 512}},
        "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
        "5": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 48, "length": 5,
                                                                  "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {
            "model": ["2", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0],
            "seed": 1, "steps": 2, "cfg": 2.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "rtv_e2e/host"}},
    }
    return prompt


def test_out_of_range_value_is_rejected_with_node_errors_and_server_keeps_serving(server):
    bad = _tiny_t2v(iterations=99)
    status, body = server.post("/prompt", {"prompt": bad})
    assert status == 400
    errors = body["node_errors"]["2"]["errors"]
    assert errors[0]["type"] == "value_bigger_than_max"
    assert "iterations" in errors[0]["details"]
    assert server.get("/system_stats")["system"]["comfyui_version"]


def test_wrong_link_type_is_rejected_with_node_errors(server):
    bad = _tiny_t2v()
    bad["2"]["inputs"]["model"] = ["3", 0]  # CONDITIONING into a MODEL input
    with pytest.raises(PromptError) as err:
        server.submit(bad)
    node_errors = err.value.payload["node_errors"]
    assert node_errors["2"]["errors"][0]["type"] == "return_type_mismatch"


def test_a_split_that_does_not_fit_fails_with_a_message_that_says_what_to_change(server):
    # 64x48 pixels -> 8x6 latent -> 4x3 tokens: h_split=2 does not divide 3 rows.
    result = server.run(_tiny_t2v(h_split=2), expect_success=False)
    assert result.status == "error"
    message = result.messages("execution_error")[0]["exception_message"]
    assert re.search(r"h_split=2 does not divide the 3 token rows", message), message
    assert "[1, 3]" in message
    ok = server.run(_tiny_t2v(h_split=3))
    assert ok.status == "success"
