"""RTV_StreamingSampler in a real server on the tiny Wan 2.1 model and VAE."""

import json
import re

import pytest
from comfy_host import webp_frame_count
from e2e_support import interrupt_after_chunks, monarch_node
from safetensors.torch import load_file

pytestmark = pytest.mark.e2e

TINY_UNET = "rtv_tiny/wan2.1_t2v_1.3B_fp16.safetensors"
TINY_VAE = "rtv_tiny/wan_2.1_vae.safetensors"


def stream_graph(total, chunk, overlap, seed=11, prefix="stream", steps=2, width=64, height=48, **extra):
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TINY_UNET, "weight_dtype": "default"}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": TINY_VAE}},
        "3": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a red fox", "tokens": 16}},
        "4": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["3", 0]}},
        "5": {"class_type": "RTV_StreamingSampler", "inputs": {
            "model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0], "vae": ["2", 0], "width": width,
            "height": height, "total_frames": total, "chunk_frames": chunk, "overlap_frames": overlap, "seed": seed,
            "steps": steps, "cfg": 2.0, "sampler_name": "euler", "scheduler": "simple",
            "overlap_mode": "pinned_latents", "anchor_strength": 0.0, "drift_correction": 0.0,
            "chunk_save_prefix": f"rtv_stream/{prefix}", **extra}},
        "6": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["5", 0], "filename_prefix": f"rtv_stream/{prefix}",
                                                           "fps": 16.0, "lossless": False, "quality": 80,
                                                           "method": "default"}},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 1], "filename_prefix": f"rtv_stream/{prefix}"}},
    }


def report_of(result):
    return json.loads(result.text("5")[0])


def chunk_latents(server, report):
    paths = [server.output_dir / p.replace(".webp", ".latent") for p in report["saved_chunks"]]
    return [load_file(str(p))["latent_tensor"] for p in paths]


@pytest.mark.parametrize(("total", "chunk", "overlap", "expected"), [(17, 9, 5, 17), (21, 9, 1, 25), (30, 13, 5, 37)])
def test_total_frame_count_is_exact(server, total, chunk, overlap, expected):
    result = server.run(stream_graph(total, chunk, overlap, prefix=f"count{total}_{chunk}_{overlap}"))
    report = report_of(result)
    assert report["frames"] == expected
    assert webp_frame_count(result.files("6")[0]) == expected
    latent = load_file(str(result.files("7", "latents")[0]))["latent_tensor"]
    assert latent.shape[2] == (expected - 1) // 4 + 1


def test_pinned_overlap_latents_equal_the_previous_chunks_and_seed_repeats(server):
    first = server.run(stream_graph(25, 9, 5, prefix="pinned_a"))
    again = server.run(stream_graph(25, 9, 5, prefix="pinned_b"))
    report = report_of(first)
    chunks = chunk_latents(server, report)
    a, m = 2, 1  # 9 frames -> 3 latents, overlap 5 -> m = 1
    assert len(chunks) == 5
    for prev, cur in zip(chunks, chunks[1:]):
        assert (cur[:, :, 1:m + 1] == prev[:, :, a - m + 1:a + 1]).all()
    assert report["global_latent_offsets"] == [0, 1, 2, 3, 4]
    assert report["seeds"] == [11, 12, 13, 14, 15]
    one = load_file(str(first.files("7", "latents")[0]))["latent_tensor"]
    two = load_file(str(again.files("7", "latents")[0]))["latent_tensor"]
    assert (one == two).all()


def test_working_memory_does_not_grow_with_length(server):
    four = report_of(server.run(stream_graph(21, 9, 5, prefix="mem4", steps=1)))
    sixteen = report_of(server.run(stream_graph(69, 9, 5, prefix="mem16", steps=1)))
    assert four["chunks"] == 4 and sixteen["chunks"] == 16
    assert sixteen["peak_working_bytes"] <= 1.10 * four["peak_working_bytes"]


def test_anchor_and_drift_correction_run_and_change_the_video(server):
    plain = server.run(stream_graph(17, 9, 5, prefix="anchor_off"))
    anchored = server.run(stream_graph(17, 9, 5, prefix="anchor_on", anchor_strength=0.5, drift_correction=0.5))
    one = load_file(str(plain.files("7", "latents")[0]))["latent_tensor"]
    two = load_file(str(anchored.files("7", "latents")[0]))["latent_tensor"]
    assert one.shape == two.shape
    assert (one[:, :, :3] == two[:, :, :3]).all()  # chunk 0 has no anchor before it
    assert not (one[:, :, 3:] == two[:, :, 3:]).all()


def test_interrupt_keeps_finished_chunks_and_the_server_healthy(server):
    prompt_id = server.submit(stream_graph(4 * 60 + 9, 9, 5, prefix="interrupted", steps=3))
    interrupt_after_chunks(server, prompt_id, "rtv_stream", "interrupted", max_chunks=61)
    assert server.run(stream_graph(17, 9, 5, prefix="after_interrupt")).status == "success"


def test_bad_settings_fail_with_a_message_that_says_what_to_change(server):
    result = server.run(stream_graph(17, 9, 5, prefix="bad", width=72), expect_success=False)
    message = result.messages("execution_error")[0]["exception_message"]
    assert "multiples of 16" in message


TINY_I2V = "rtv_tiny/wan2.1_i2v_480p_14B_fp16.safetensors"


def test_i2v_start_frames_mode_on_an_i2v_model(server):
    graph = stream_graph(29, 13, 5, prefix="i2v", overlap_mode="i2v_start_frames")
    graph["1"]["inputs"]["unet_name"] = TINY_I2V
    graph["8"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0x808080}}
    graph["5"]["inputs"]["start_image"] = ["8", 0]
    result = server.run(graph)
    assert report_of(result)["frames"] == 29
    assert webp_frame_count(result.files("6")[0]) == 29


def test_i2v_mode_on_a_t2v_model_says_to_use_pinned_latents(server):
    result = server.run(stream_graph(17, 9, 5, prefix="i2v_bad", overlap_mode="i2v_start_frames"),
                        expect_success=False)
    message = result.messages("execution_error")[0]["exception_message"]
    assert "use 'pinned_latents'" in message


def test_per_chunk_prompts_change_later_chunks_only(server):
    base = stream_graph(17, 9, 5, prefix="prompts_same")
    per_chunk = stream_graph(17, 9, 5, prefix="prompts_per_chunk")
    per_chunk["9"] = {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a blue bird", "tokens": 16}}
    per_chunk["10"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["3", 0],
                                                                       "conditioning_2": ["9", 0]}}
    per_chunk["5"]["inputs"]["chunk_prompts"] = ["10", 0]
    one = load_file(str(server.run(base).files("7", "latents")[0]))["latent_tensor"]
    two = load_file(str(server.run(per_chunk).files("7", "latents")[0]))["latent_tensor"]
    assert (one[:, :, :3] == two[:, :, :3]).all()  # chunk 0 uses the first prompt, as before
    assert not (one[:, :, 3:] == two[:, :, 3:]).all()  # chunk 1 uses "a blue bird"


def test_streaming_after_monarch_attention_replaces_self_attention_in_every_chunk(server):
    graph = stream_graph(17, 9, 5, prefix="monarch", width=64, height=48)
    graph["20"] = monarch_node(["1", 0], exact_local=-1)
    graph["5"]["inputs"]["model"] = ["20", 0]
    result = server.run(graph)
    assert report_of(result)["frames"] == 17
    summaries = re.findall(r"Monarch attention replaced (\d+) self-attention calls \((\d+) kept dense\) in (\d+) "
                           r"model calls", server.log_path.read_text())
    chunk_runs = [tuple(map(int, s)) for s in summaries[-3:]]  # one sampling run per chunk
    assert len(chunk_runs) == 3
    assert all(replaced == 2 * calls and dense == 0 for replaced, dense, calls in chunk_runs)


def test_a_hunyuan_video_model_streams_with_monarch_attention(server):
    """HunyuanVideo through the node: the tiny model (Monarch patched in), its VAE's stand-in (the tiny Wan
    2.1 VAE: ComfyUI 0.3.75 cannot build a small HunyuanVideo VAE), text conditioning of its family."""
    g = stream_graph(21, 13, 5, prefix="hunyuan", width=96, height=64)
    g["1"]["inputs"]["unet_name"] = "rtv_tiny/hunyuan_video_t2v_720p_bf16.safetensors"
    g["2"]["inputs"]["vae_name"] = "rtv_tiny/hunyuan_video_vae_bf16.safetensors"
    g["3"]["inputs"]["family"] = "hunyuan_video"
    g["8"] = monarch_node(["1", 0])
    g["5"]["inputs"]["model"] = ["8", 0]
    result = server.run(g)
    report = report_of(result)
    assert report["frames"] == 21 and report["chunks"] == 2
    assert webp_frame_count(result.files("6")[0]) == 21
    summaries = re.findall(r"Monarch attention replaced (\d+) self-attention calls \((\d+) kept dense\)",
                           server.log_path.read_text())
    assert summaries and int(summaries[-1][0]) > 0 and int(summaries[-1][1]) == 0


def test_an_ltx_video_checkpoint_streams_in_chunks_of_8a_plus_1_frames(server):
    """LTX-Video through the node from a single-file checkpoint (its own small VAE): lengths snap to its
    8 frames per latent, and the video has the asked length."""
    g = stream_graph(41, 25, 9, prefix="ltxv", width=128, height=96)
    g["1"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "rtv_tiny/ltx-video-2b-v0.9.5.safetensors"}}
    del g["2"]
    g["5"]["inputs"]["vae"] = ["1", 2]
    g["3"]["inputs"]["family"] = "ltxv"
    g["4"] = {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "", "tokens": 16, "family": "ltxv"}}
    result = server.run(g)
    report = report_of(result)
    assert report["frames"] == 41 and report["chunks"] == 2
    assert webp_frame_count(result.files("6")[0]) == 41
    snapped = server.run({**g, "5": {**g["5"], "inputs": {**g["5"]["inputs"], "chunk_frames": 23}}})
    assert "chunk_frames 23 -> 25 (the VAE needs 8a+1)" in report_of(snapped)["plan"]


HIGH_NOISE = "rtv_tiny/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"
LOW_NOISE = "rtv_tiny/wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"


def advanced(model, latent, add_noise, start, end, leftover, seed=11, steps=4):
    return {"class_type": "KSamplerAdvanced", "inputs": {
        "model": model, "add_noise": add_noise, "noise_seed": seed, "steps": steps, "cfg": 2.0, "sampler_name": "euler",
        "scheduler": "simple", "positive": ["3", 0], "negative": ["4", 0], "latent_image": latent,
        "start_at_step": start, "end_at_step": end, "return_with_leftover_noise": leftover}}


def test_wan22_a14b_experts_stream_like_comfyuis_two_ksampleradvanced_template(server):
    """One chunk with both experts equals core KSamplerAdvanced (high noise, steps 0-2, leftover noise) then
    KSamplerAdvanced (low noise, no added noise, steps 2-4): the same latents, bit for bit."""
    streamed = stream_graph(9, 9, 5, prefix="experts", steps=4)
    streamed["1"]["inputs"]["unet_name"] = HIGH_NOISE
    streamed["8"] = {"class_type": "UNETLoader", "inputs": {"unet_name": LOW_NOISE, "weight_dtype": "default"}}
    streamed["5"]["inputs"].update({"model_low_noise": ["8", 0], "low_noise_start_step": 2})
    core = {nid: streamed[nid] for nid in ("1", "3", "4", "8")}
    core["9"] = {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 48, "length": 9,
                                                                      "batch_size": 1}}
    core["10"] = advanced(["1", 0], ["9", 0], "enable", 0, 2, "enable")
    core["11"] = advanced(["8", 0], ["10", 0], "disable", 2, 10000, "disable")
    core["12"] = {"class_type": "SaveLatent", "inputs": {"samples": ["11", 0], "filename_prefix": "rtv_stream/core"}}

    def saved_latent(result, node):
        item = result.outputs[node]["latents"][0]
        return load_file(str(server.output_dir / item["subfolder"] / item["filename"]))["latent_tensor"]

    result = server.run(streamed)
    assert report_of(result)["low_noise_expert_from_step"] == 2
    ours = saved_latent(result, "7")
    theirs = saved_latent(server.run(core), "12")
    assert ours.shape == theirs.shape == (1, 16, 3, 6, 8)
    assert (ours == theirs).all()
    streamed["5"]["inputs"]["low_noise_start_step"] = 4
    message = server.run(streamed, expect_success=False).messages("execution_error")[0]["exception_message"]
    assert "low_noise_start_step must be between 1 and steps - 1" in message
