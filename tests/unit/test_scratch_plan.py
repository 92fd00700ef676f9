"""How a Monarch call splits its query tiles into launches under a scratch budget (no GPU needed)."""

import pytest
import torch

from rtv.kernels.monarch import monarch_layout
from rtv.kernels.monarch.scratch_plan import (
    DEFAULT_SCRATCH_MB,
    SCRATCH_ENV,
    chunk_bounds,
    head_slices,
    query_tiles_per_chunk,
    scratch_budget_bytes,
)


@pytest.mark.parametrize("tiles, most", [(21, 5), (21, 21), (21, 1), (7, 3), (3, 7), (1, 1), (64, 10)])
def test_chunks_cover_every_tile_once_in_as_few_even_chunks_as_the_budget_allows(tiles, most):
    bounds = chunk_bounds(tiles, most)
    covered = [t for first, count in bounds for t in range(first, first + count)]
    assert covered == list(range(tiles))
    sizes = [count for _, count in bounds]
    assert max(sizes) <= most and len(bounds) == -(-tiles // most)
    assert max(sizes) - min(sizes) <= 1


def test_480p_under_the_old_fixed_budget_runs_five_chunks_of_four_or_five_tiles():
    layout = monarch_layout((21, 30, 52), 32760, 32760)
    most = query_tiles_per_chunk(layout, groups=12, head_dim=128, elem=2, iterations=1, budget=1 << 30)
    assert most == 5
    assert [count for _, count in chunk_bounds(layout.query_tiles, most)] == [4, 4, 4, 4, 5]
    one_launch = query_tiles_per_chunk(layout, groups=12, head_dim=128, elem=2, iterations=1, budget=4608 << 20)
    assert one_launch == 21


def test_budget_is_the_environment_setting_when_given_and_the_floor_off_cuda(monkeypatch):
    monkeypatch.setenv(SCRATCH_ENV, "2.5")
    assert scratch_budget_bytes(torch.device("cpu")) == int(2.5 * (1 << 20))
    monkeypatch.delenv(SCRATCH_ENV)
    assert scratch_budget_bytes(torch.device("cpu")) == DEFAULT_SCRATCH_MB << 20


def test_720p_runs_launches_of_whole_heads_so_each_head_reads_its_keys_once():
    layout = monarch_layout((21, 45, 80), 75600, 75600)
    budget = 8 << 30
    assert query_tiles_per_chunk(layout, groups=40, head_dim=128, elem=2, iterations=1, budget=budget) == 5
    assert head_slices(layout, 1, 40, 128, 2, 1, budget) == [(0, 10), (10, 10), (20, 10), (30, 10)]
    sizes = [count for _, count in head_slices(layout, 1, 40, 128, 2, 2, budget)]  # aR as well: 6 heads fit
    assert sum(sizes) == 40 and max(sizes) <= 6 and len(sizes) == 7
    two = head_slices(layout, 2, 40, 128, 2, 1, budget)  # a batch of two: each launch takes both items' heads
    assert [count for _, count in two] == [5] * 8


def test_heads_stay_in_one_launch_when_all_fit_or_not_even_one_does():
    layout = monarch_layout((21, 30, 52), 32760, 32760)
    assert head_slices(layout, 1, 12, 128, 2, 1, 8 << 30) == [(0, 12)]  # 480p: 4.3 GB
    big = monarch_layout((21, 45, 80), 75600, 75600)
    assert head_slices(big, 1, 40, 128, 2, 1, 512 << 20) == [(0, 40)]  # one head needs 0.82 GB: tile chunks
    assert len(head_slices(big, 1, 40, 128, 2, 1, 1 << 30)) == 40
