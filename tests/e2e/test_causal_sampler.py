"""RTV_CausalStreamingSampler in a real server on the tiny Wan 2.1 T2V model (a stand-in for a Self-Forcing
checkpoint: same architecture) and the tiny Wan VAE."""

import json
import re

import pytest
from comfy_host import webp_frame_count
from e2e_support import interrupt_after_chunks, monarch_node
from safetensors.torch import load_file

pytestmark = pytest.mark.e2e

TINY_UNET = "rtv_tiny/wan2.1_t2v_1.3B_fp16.safetensors"
TINY_VAE = "rtv_tiny/wan_2.1_vae.safetensors"
TINY_BLOCKS = 2
STEPS = 4  # "1000,750,500,250"
SUMMARY = re.compile(
    r"Monarch attention replaced (\d+) self-attention calls \((\d+) kept dense\) in (\d+) model calls"
)


def causal_graph(total, chunk=3, seed=5, prefix="causal", window=-1, sinks=0, monarch=None, **extra):
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": TINY_UNET, "weight_dtype": "default"}},
        "2": {"class_type": "VAELoader", "inputs": {"vae_name": TINY_VAE}},
        "3": {"class_type": "RTVTest_TextConditioning", "inputs": {"text": "a red fox", "tokens": 16}},
        "5": {
            "class_type": "RTV_CausalStreamingSampler",
            "inputs": {
                "model": ["1", 0], "positive": ["3", 0], "vae": ["2", 0], "total_frames": total,
                "chunk_latent_frames": chunk, "timesteps": "1000,750,500,250", "shift": 5.0,
                "kv_window_frames": window, "sink_frames": sinks, "seed": seed, "width": 64, "height": 48,
                "chunk_save_prefix": f"rtv_causal/{prefix}", **extra,
            },
        },
        "6": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {"images": ["5", 0], "filename_prefix": f"rtv_causal/{prefix}", "fps": 16.0,
                       "lossless": False, "quality": 80, "method": "default"},
        },
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 1], "filename_prefix": f"rtv_causal/{prefix}"}},
    }  # fmt: skip
    if monarch is not None:
        g["8"] = monarch_node(["1", 0], **monarch)
        g["5"]["inputs"]["model"] = ["8", 0]
    return g


def report_of(result):
    return json.loads(result.text("5")[0])


def latent_of(result):
    return load_file(str(result.files("7", "latents")[0]))["latent_tensor"]


@pytest.mark.parametrize(
    ("total", "chunk", "expected", "chunks"), [(17, 3, 17, 2), (33, 2, 33, 5), (30, 3, 33, 3)]
)
def test_frame_count_is_exact_and_every_chunk_is_saved(server, total, chunk, expected, chunks):
    result = server.run(causal_graph(total, chunk, prefix=f"count{total}_{chunk}"))
    report = report_of(result)
    assert report["frames"] == expected and report["chunks"] == chunks
    assert webp_frame_count(result.files("6")[0]) == expected
    assert latent_of(result).shape[2] == (expected - 1) // 4 + 1
    saved = [server.output_dir / p for p in report["saved_chunks"]]
    assert len(saved) == chunks
    assert sum(webp_frame_count(p) for p in saved) == expected
    assert all(p.with_suffix(".latent").is_file() for p in saved)


def test_same_seed_same_video_and_the_seed_matters(server):
    one = server.run(causal_graph(17, prefix="seed_a"))
    two = server.run(causal_graph(17, prefix="seed_b"))
    other = server.run(causal_graph(17, seed=6, prefix="seed_c"))
    assert (latent_of(one) == latent_of(two)).all()
    assert not (latent_of(one) == latent_of(other)).all()
    report = report_of(one)
    assert report["seeds"] == [5, 6] and report["global_latent_offsets"] == [0, 3]
    assert report["sigmas"] == pytest.approx([1.0, 0.9375, 0.833333, 0.625, 0.0])
    # 2 chunks x 5 model calls; only chunk 1's calls see cached keys; text K/V computed once per block
    assert report["self_attention_calls"] == TINY_BLOCKS * 5 * 2
    assert report["calls_with_cached_keys"] == TINY_BLOCKS * 5
    assert report["text_kv_computed"] == TINY_BLOCKS


def test_cuda_graphs_input_is_wired_and_off_cuda_every_call_runs_normally(server):
    plain = server.run(causal_graph(17, prefix="graphs_off", cuda_graphs=False))
    graphs = server.run(causal_graph(17, prefix="graphs_default"))  # cuda_graphs is on by default
    assert (latent_of(plain) == latent_of(graphs)).all()
    assert "cuda_graphs" not in report_of(plain)
    # this server runs on the CPU: nothing is captured, all 2 chunks x 5 calls run as usual
    assert report_of(graphs)["cuda_graphs"] == (
        "CUDA graphs: 0 captured, 0 replayed, 10 eager calls; block graphs: 0 captured, 0 block calls replayed"
    )


def _summaries_of(server, run):
    start = len(server.log_path.read_text())
    result = run()
    return result, [tuple(int(v) for v in m) for m in SUMMARY.findall(server.log_path.read_text()[start:])]


def test_monarch_patched_model_runs_in_chunk_mode(server):
    # 64 x 48 px -> 3 token rows: h_split 3 is one row per tile, exact; the default is not
    dense = latent_of(server.run(causal_graph(25, 2, prefix="monarch_dense")))
    exact, summaries = _summaries_of(
        server, lambda: server.run(causal_graph(25, 2, prefix="mon_x", monarch={"h_split": 3}))
    )
    report = report_of(exact)
    assert len(summaries) == 4  # one sampling run per chunk (7 latent frames in chunks of 2)
    for replaced, kept_dense, model_calls in summaries:
        assert model_calls == STEPS + 1 and kept_dense == 0 and replaced == TINY_BLOCKS * model_calls
    assert report["calls_with_cached_keys"] == TINY_BLOCKS * (STEPS + 1) * 3
    assert report["max_key_frames"] == 7
    assert (latent_of(exact) - dense).abs().max() < 1e-3 * dense.abs().max()
    default = latent_of(server.run(causal_graph(25, 2, prefix="mon_default", monarch={})))
    assert (default - dense).abs().max() > 1e-3 * dense.abs().max()


def test_rolling_window_keeps_the_cache_flat_and_frames_keep_their_global_index(server):
    report = report_of(server.run(causal_graph(41, 2, prefix="rolling", window=5, sinks=1)))
    assert report["latent_frames"] == 11 and report["frames"] == 41
    assert len(set(report["kv_cache_bytes"])) == 1
    assert report["cached_latent_frames"][-1] == [0, 7, 8, 9, 10]
    assert report["global_latent_offsets"] == [0, 2, 4, 6, 8, 10]
    assert report["max_key_frames"] == 5


def test_interrupt_keeps_finished_chunks_and_the_server_healthy(server):
    prompt_id = server.submit(causal_graph(4 * 60 + 1, 1, prefix="interrupted"))
    interrupt_after_chunks(server, prompt_id, "rtv_causal", "interrupted", max_chunks=61)
    assert server.run(causal_graph(9, prefix="after_interrupt")).status == "success"


@pytest.mark.parametrize(
    ("change", "says"),
    [({"timesteps": "1000,abc"}, "cannot read 'abc'"), ({"kv_window_frames": 2}, "use at least 3")],
)
def test_bad_settings_fail_with_a_message_that_says_what_to_change(server, change, says):
    graph = causal_graph(17, prefix="bad")
    graph["5"]["inputs"].update(change)
    result = server.run(graph, expect_success=False)
    assert says in result.messages("execution_error")[0]["exception_message"]
