"""bench/reference_quality.py (issue 10 item 4) runs end to end: its --smoke mode on the smoke-trained
reference weights writes every section with finite numbers. A harness check only: smoke weights are
a few training steps old, so nothing here is a claim about quality."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from tiny_models import REPO

sys.path.insert(0, str(REPO / "bench"))

import reference_quality  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    """Tiny tensors on the shared 2-core machine: one thread avoids OpenMP threads waiting on each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference_quality") / "reference_quality_smoke.json"
    assert reference_quality.main(["--smoke", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def numbers(node, path=""):
    """Every number in a JSON tree, with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numbers(value, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def test_every_number_in_the_record_is_finite(record):
    bad = [path for path, value in numbers(record) if not math.isfinite(value)]
    assert not bad, bad


def test_attention_section_has_entropy_and_monarch_errors_per_block_for_trained_and_random_weights(record):
    for model in ("trained", "random_weights"):
        attention = record["attention"][model]
        assert attention["blocks"] and attention["tokens"] == math.prod(attention["grid"])
        for block in attention["blocks"]:
            assert 0 < block["normalized_entropy"] <= 1 + 1e-6
            assert {row["label"] for row in block["monarch"]} == {
                row["label"] for row in attention["monarch"]
            }
        for row in attention["monarch"]:
            assert row["density"] > 0 and row["rel_l2"] >= 0  # a toy grid may cost more than dense


def test_sampled_video_section_compares_monarch_settings_with_dense(record):
    videos = record["sampled_videos"]
    assert videos["jobs"] and 0 <= videos["dense"]["recognisability"]["rate"] <= 1
    assert len(videos["monarch"]) >= 2
    for row in videos["monarch"]:
        assert row["video_rel_l2"] >= 0 and row["video_psnr_db"] > 0
        assert 0 <= row["recognisability"]["rate"] <= 1


def test_streaming_section_measures_seams_and_drift_with_and_without_align(record):
    stream = record["streaming"]
    assert stream["chunks"] >= 2 and stream["total_frames"] > stream["chunk_frames"]
    for variant in ("raw", "aligned"):
        summary = stream["summary"][variant]
        for key in (
            "seam_warp_error_ratio_max",
            "seam_motion_change_px_ratio_max",
            "seam_flicker_ratio_max",
            "mawe",
            "last_chunk_lab_shift",
            "recognisable_rate",
            "window_pass_rate",
        ):
            assert summary[key] is not None, (variant, key)
        video = stream["videos"][variant][0]
        assert len(video["seams"]) == stream["chunks"] - 1
        assert len(video["drift"]["lab_mean_shift"]) == stream["chunks"]


def test_interpolation_section_rebuilds_dropped_frames_by_flow_and_blend(record):
    for source in ("model_samples", "procedural_clips"):
        interp = record["interpolation"][source]
        assert interp["videos"] and all(v["rebuilt_frames"] > 0 for v in interp["videos"])
        assert interp["flow_psnr_db"] > 0 and interp["blend_psnr_db"] > 0
