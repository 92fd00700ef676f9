"""RTV_SequenceParallel in a real server: 2 gloo ranks on the tiny Wan 2.1 T2V model (2 heads) give the
unpatched model's result, for core KSampler (bidirectional, CFG batch) and the causal sampler (KV cache).
One prompt holds both samplers with and without the node, so the worker pool starts once."""

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.e2e

TINY_UNET = "rtv_tiny/wan2.1_t2v_1.3B_fp16.safetensors"
TINY_VAE = "rtv_tiny/wan_2.1_vae.safetensors"
# 80 x 48 px -> 5 x 3 tokens per latent frame: 45 tokens for 3 frames, so the last shard is padded
WIDTH, HEIGHT = 80, 48


def graph() -> dict:
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TINY_UNET, "weight_dtype": "default"}},
        "2": {"class_type": "RTV_SequenceParallel", "inputs": {"model": ["1", 0], "ranks": 2, "backend": "gloo"}},
        "3": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a red fox", "tokens": 16}},
        "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
        "5": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": WIDTH, "height": HEIGHT, "length": 9,
                                                                  "batch_size": 1}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": TINY_VAE}},
    }  # fmt: skip
    for model, name in ((["1", 0], "one"), (["2", 0], "two")):
        g[f"ks_{name}"] = {"class_type": "KSampler", "inputs": {
            "model": model, "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0], "seed": 3,
            "steps": 2, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}
        g[f"causal_{name}"] = {"class_type": "RTV_CausalStreamingSampler", "inputs": {
            "model": model, "positive": ["3", 0], "vae": ["6", 0], "total_frames": 5, "chunk_latent_frames": 1,
            "timesteps": "1000,750,500,250", "shift": 5.0, "kv_window_frames": -1, "sink_frames": 0, "seed": 5,
            "width": WIDTH, "height": HEIGHT, "chunk_save_prefix": ""}}
        for sampler, output in (("ks", 0), ("causal", 1)):
            g[f"save_{sampler}_{name}"] = {"class_type": "SaveLatent", "inputs": {
                "samples": [f"{sampler}_{name}", output], "filename_prefix": f"rtv_sp/{sampler}_{name}"}}
    return g  # fmt: skip


def latent(server, result, node: str):
    item = result.outputs[node]["latents"][0]
    return load_file(str(server.workdir / "output" / item["subfolder"] / item["filename"]))["latent_tensor"]


def test_two_gloo_ranks_give_the_one_rank_result_through_the_server(server, pack_nodes):
    info = pack_nodes["RTV_SequenceParallel"]
    assert info["display_name"].endswith("(RTV)") and info["category"].startswith("RealtimeVideo/")
    result = server.run(graph())
    for sampler in ("ks", "causal"):
        one, two = latent(server, result, f"save_{sampler}_one"), latent(server, result, f"save_{sampler}_two")
        assert two.shape == one.shape
        assert (two - one).abs().max() <= 1e-5 * one.abs().max(), sampler
    assert "sequence parallel: 2 ranks (gloo) started" in server.log_path.read_text()
