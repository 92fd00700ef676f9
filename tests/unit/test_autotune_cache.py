"""Issue 5 item 1: Monarch kernel tuning results persist on disk across processes (no GPU needed)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from rtv.kernels.monarch import autotune_cache
from rtv.kernels.monarch.autotune_cache import AutotuneCache, pick_config

CANDIDATES = [{"BLOCK": 64, "num_warps": 4}, {"BLOCK": 128, "num_warps": 8}, {"BLOCK": 32, "num_warps": 4}]
KEY = "NVIDIA H100 80GB HBM3|triton=3.6.0|stage1|bfloat16|b2=52,d=128"


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(autotune_cache.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(autotune_cache.AUTOTUNE_ENV, raising=False)
    monkeypatch.setattr(autotune_cache, "_shared_cache", None)
    monkeypatch.delenv(autotune_cache.SHIPPED_ENV, raising=False)
    monkeypatch.setattr(autotune_cache, "SHIPPED_CHOICES_PATH", tmp_path / "shipped" / "none.json")
    monkeypatch.setattr(autotune_cache, "_shipped", None)


def _ship(monkeypatch, tmp_path, entries):
    path = tmp_path / "shipped_choices.json"
    path.write_text(json.dumps({"format": autotune_cache.CACHE_FORMAT, "entries": entries}))
    monkeypatch.setattr(autotune_cache, "SHIPPED_CHOICES_PATH", path)
    monkeypatch.setattr(autotune_cache, "_shipped", None)


def fake_timings(ms_by_block):
    calls = []

    def measure(config):
        calls.append(config["BLOCK"])
        if ms_by_block[config["BLOCK"]] is None:
            raise RuntimeError("out of shared memory")
        return ms_by_block[config["BLOCK"]]

    return measure, calls


def test_fastest_candidate_is_measured_once_and_written_to_disk(tmp_path):
    measure, calls = fake_timings({64: 2.0, 128: 1.0, 32: 3.0})
    assert pick_config(KEY, CANDIDATES, measure) == CANDIDATES[1]
    assert calls == [64, 128, 32]
    stored = json.loads((tmp_path / autotune_cache.CACHE_FILE_NAME).read_text())
    assert stored["entries"][KEY] == CANDIDATES[1]


def test_a_new_process_reuses_the_stored_choice_without_measuring(tmp_path):
    pick_config(KEY, CANDIDATES, fake_timings({64: 2.0, 128: 1.0, 32: 3.0})[0])
    autotune_cache._shared_cache = None  # what a fresh process starts with
    measure, calls = fake_timings({64: 0.1, 128: 9.0, 32: 9.0})
    assert pick_config(KEY, CANDIDATES, measure) == CANDIDATES[1]
    assert calls == []


def test_failing_candidates_are_skipped():
    measure, _ = fake_timings({64: None, 128: 5.0, 32: None})
    assert pick_config(KEY, CANDIDATES, measure) == CANDIDATES[1]


def test_stored_config_that_is_no_longer_a_candidate_is_measured_again(tmp_path):
    cache = AutotuneCache(tmp_path / autotune_cache.CACHE_FILE_NAME)
    cache.put(KEY, {"BLOCK": 256, "num_warps": 16})
    measure, calls = fake_timings({64: 2.0, 128: 1.0, 32: 3.0})
    assert pick_config(KEY, CANDIDATES, measure, cache) == CANDIDATES[1]
    assert calls == [64, 128, 32]


def test_autotune_off_uses_the_default_and_stores_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv(autotune_cache.AUTOTUNE_ENV, "0")
    measure, calls = fake_timings({64: 2.0, 128: 1.0, 32: 3.0})
    assert pick_config(KEY, CANDIDATES, measure) == CANDIDATES[0]
    assert calls == []
    assert not (tmp_path / autotune_cache.CACHE_FILE_NAME).exists()


def test_corrupt_cache_file_is_ignored(tmp_path):
    (tmp_path / autotune_cache.CACHE_FILE_NAME).write_text("{not json")
    assert pick_config(KEY, CANDIDATES, fake_timings({64: 2.0, 128: 1.0, 32: 3.0})[0]) == CANDIDATES[1]


def test_entries_of_two_writers_are_merged(tmp_path):
    path = tmp_path / autotune_cache.CACHE_FILE_NAME
    first, second = AutotuneCache(path), AutotuneCache(path)
    first.get(KEY)
    second.get(KEY)
    first.put(KEY, CANDIDATES[0])
    second.put(KEY + "-other", CANDIDATES[2])
    assert AutotuneCache(path).get(KEY) == CANDIDATES[0]
    assert AutotuneCache(path).get(KEY + "-other") == CANDIDATES[2]


def test_tuning_says_so_in_the_log_once_and_a_stored_choice_says_nothing(caplog, tmp_path):
    caplog.set_level("INFO", logger="RealtimeVideo")
    pick_config(KEY, CANDIDATES, fake_timings({64: 2.0, 128: 1.0, 32: 3.0})[0])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "tuning 3 kernel configurations" in messages[0] and str(tmp_path) in messages[0]
    assert "chose BLOCK=128,num_warps=8 (1.000 ms)" in messages[1]
    caplog.clear()
    pick_config(KEY, CANDIDATES, fake_timings({64: 2.0, 128: 1.0, 32: 3.0})[0])
    assert caplog.records == []


def test_listeners_hear_about_tuning_and_a_failing_listener_changes_nothing():
    heard = []

    def broken(message):
        raise RuntimeError("frontend gone")

    autotune_cache.tuning_listeners[:] = [heard.append, broken]
    try:
        assert pick_config(KEY, CANDIDATES, fake_timings({64: 2.0, 128: 1.0, 32: 3.0})[0]) == CANDIDATES[1]
        pick_config(KEY, CANDIDATES, fake_timings({64: 2.0, 128: 1.0, 32: 3.0})[0])  # stored: no tuning
    finally:
        autotune_cache.tuning_listeners.clear()
    assert len(heard) == 1 and "tuning its kernels for a new shape, once per GPU (3 configurations" in heard[0]


def test_a_choice_shipped_for_this_gpu_model_is_used_without_measuring(monkeypatch, tmp_path):
    _ship(monkeypatch, tmp_path, {KEY: CANDIDATES[2]})
    measure, calls = fake_timings({64: 2.0, 128: 1.0, 32: 3.0})
    assert pick_config(KEY, CANDIDATES, measure) == CANDIDATES[2]
    assert calls == []  # nothing compiled or timed but the chosen kernel
    assert not (tmp_path / autotune_cache.CACHE_FILE_NAME).exists()  # a newer pack's choices still apply


def test_the_users_own_measurement_wins_over_the_shipped_choice(monkeypatch, tmp_path):
    _ship(monkeypatch, tmp_path, {KEY: CANDIDATES[2]})
    AutotuneCache(tmp_path / autotune_cache.CACHE_FILE_NAME).put(KEY, CANDIDATES[0])
    assert pick_config(KEY, CANDIDATES, fake_timings({64: 2.0, 128: 1.0, 32: 3.0})[0]) == CANDIDATES[0]


def test_shipped_choices_can_be_ignored_and_stale_ones_are(monkeypatch, tmp_path):
    _ship(monkeypatch, tmp_path, {KEY: {"BLOCK": 256, "num_warps": 8}})  # not a candidate any more
    measure, calls = fake_timings({64: 2.0, 128: 1.0, 32: 3.0})
    assert pick_config(KEY, CANDIDATES, measure) == CANDIDATES[1] and calls == [64, 128, 32]
    monkeypatch.setenv(autotune_cache.SHIPPED_ENV, "0")
    _ship(monkeypatch, tmp_path, {KEY + "|2": CANDIDATES[2]})
    measure, calls = fake_timings({64: 2.0, 128: 1.0, 32: 3.0})
    assert pick_config(KEY + "|2", CANDIDATES, measure) == CANDIDATES[1] and calls == [64, 128, 32]


def test_the_shipped_file_names_a_gpu_model_and_triton_version_in_every_key():
    entries = autotune_cache.read_choices(Path(autotune_cache.__file__).with_name("shipped_choices.json"))
    assert len(entries) >= 20
    for key, choice in entries.items():
        device, triton_version, kind = key.split("|")[:3]
        assert device and triton_version.startswith("triton=") and kind in ("stage1", "stage2", "refine", "local")
        assert choice and all(isinstance(v, (int, bool, str)) for v in choice.values()), (key, choice)


def test_candidates_are_prepared_at_once_then_timed_in_turn(monkeypatch):
    monkeypatch.setenv(autotune_cache.COMPILE_THREADS_ENV, "3")
    together = threading.Barrier(3, timeout=10)  # passes only if all three compile at the same time
    prepared = []

    def prepare(config):
        prepared.append(config["BLOCK"])
        together.wait()

    measure, calls = fake_timings({64: 2.0, 128: 1.0, 32: 3.0})
    assert pick_config(KEY, CANDIDATES, measure, prepare=prepare) == CANDIDATES[1]
    assert sorted(prepared) == [32, 64, 128] and calls == [64, 128, 32]


def test_a_candidate_that_fails_to_prepare_is_still_timed_and_one_thread_prepares_in_turn(monkeypatch):
    monkeypatch.setenv(autotune_cache.COMPILE_THREADS_ENV, "1")
    order = []

    def prepare(config):
        order.append(config["BLOCK"])
        if config["BLOCK"] == 128:
            raise RuntimeError("out of shared memory")

    measure, calls = fake_timings({64: 2.0, 128: None, 32: 3.0})
    assert pick_config(KEY, CANDIDATES, measure, prepare=prepare) == CANDIDATES[0]
    assert order == [64, 128, 32] and calls == [64, 128, 32]


def test_nothing_is_prepared_when_a_choice_is_stored(monkeypatch, tmp_path):
    _ship(monkeypatch, tmp_path, {KEY: CANDIDATES[2]})
    assert pick_config(KEY, CANDIDATES, fake_timings({})[0], prepare=lambda c: pytest.fail("compiled")) == CANDIDATES[2]
