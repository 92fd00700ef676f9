"""RTV_MonarchAttention in a real server on tiny HunyuanVideo (1.0, 1.5) and LTX-Video models, sampled by core KSampler.

The tiny DiTs are loaded by core ``UNETLoader`` from the models folder (``tools/tiny_models.py``) and
detected by ComfyUI as the real families; core latent nodes make their latents.
"""

import re

import pytest
from e2e_support import monarch_node

pytestmark = pytest.mark.e2e

STEPS = 2
SUMMARY = re.compile(r"Monarch attention replaced (\d+) self-attention calls \((\d+) kept dense\) in (\d+) model calls")

FAMILIES = {
    # unet file, conditioning family, latent node and inputs, token rows per frame, video attention blocks
    "hunyuan_video": ("rtv_tiny/hunyuan_video_t2v_720p_bf16.safetensors", "EmptyHunyuanLatentVideo",
                      {"width": 128, "height": 96, "length": 9, "batch_size": 1}, 6, 4),
    "ltxv": ("rtv_tiny/ltxv_transformer.safetensors", "EmptyLTXVLatentVideo",
             {"width": 192, "height": 128, "length": 17, "batch_size": 1}, 4, 2),
    "hunyuan_video_15": ("rtv_tiny/hunyuanvideo1.5_720p_t2v_fp16.safetensors", "EmptyHunyuanVideo15Latent",
                         {"width": 96, "height": 64, "length": 9, "batch_size": 1}, 4, 2),
}


def graph(family: str, monarch: dict | None):
    unet, latent_node, latent_inputs, _, _ = FAMILIES[family]
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "3": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a red fox", "tokens": 16, "family": family}},
        "4": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "", "tokens": 16, "family": family}},
        "5": {"class_type": latent_node, "inputs": latent_inputs},
    }
    model = ["1", 0]
    if monarch is not None:
        g["2"] = monarch_node(model, **monarch)
        model = ["2", 0]
    g["6"] = {"class_type": "KSampler", "inputs": {
        "model": model, "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0], "seed": 3,
        "steps": STEPS, "cfg": 3.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}}
    g["7"] = {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": f"rtv_e2e/{family}"}}
    return g


def sampled_latent(server, result):
    from safetensors.torch import load_file

    files = [server.workdir / "output" / f["subfolder"] / f["filename"] for f in result.outputs["7"]["latents"]]
    return load_file(str(files[0]))["latent_tensor"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_row_per_tile_reproduces_the_unpatched_model_and_default_differs(server, family):
    rows, blocks = FAMILIES[family][3:]
    dense = sampled_latent(server, server.run(graph(family, None)))
    exact = sampled_latent(server, server.run(graph(family, {"h_split": rows})))
    found = SUMMARY.findall(server.log_path.read_text())
    assert found, "no Monarch summary in the server log"
    replaced, kept_dense, model_calls = (int(v) for v in found[-1])
    default = sampled_latent(server, server.run(graph(family, {})))

    assert (exact - dense).abs().max() < 1e-3 * dense.abs().max()
    assert (default - dense).abs().max() > 1e-2 * dense.abs().max()
    assert model_calls >= STEPS and kept_dense == 0 and replaced == blocks * model_calls

