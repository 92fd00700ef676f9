"""The capture helpers of ``patches/graph_capture.py`` against a stand-in for Triton's CUDA launcher.

Triton and a GPU are not needed: the launcher class is replaced by one that records what it was
handed. On the GPU, ``tests/integration/test_block_graphs.py`` captures real Triton kernels with it.
"""

import sys
import types

import pytest
import torch

from rtv.patches import graph_capture


class RecordingLauncher:
    """Called like Triton's ``CudaLauncher``: grid, stream, function, then the kernel's arguments."""

    def __init__(self):
        self.calls = []

    def __call__(self, grid_x, grid_y, grid_z, stream, function, *args):
        self.calls.append(args)


@pytest.fixture
def launcher_module(monkeypatch):
    names = ("triton", "triton.backends", "triton.backends.nvidia", "triton.backends.nvidia.driver")
    modules = {name: types.ModuleType(name) for name in names}
    modules["triton.backends.nvidia.driver"].CudaLauncher = RecordingLauncher
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return modules["triton.backends.nvidia.driver"]


def test_tensors_reach_the_launcher_as_addresses_only_inside(launcher_module):
    launcher, tensor = RecordingLauncher(), torch.arange(4.0)
    original = RecordingLauncher.__call__
    with graph_capture.triton_launches_by_address():
        launcher(1, 1, 1, 0, "kernel", "metadata", tensor, 3, None, 2.5)
        with graph_capture.triton_launches_by_address():  # nested: patched once, restored once
            launcher(1, 1, 1, 0, "kernel", tensor)
    launcher(1, 1, 1, 0, "kernel", tensor)
    assert launcher.calls[0] == ("metadata", tensor.data_ptr(), 3, None, 2.5)
    assert launcher.calls[1] == (tensor.data_ptr(),)
    assert launcher.calls[2][0] is tensor  # outside: Triton's own pointer check applies again
    assert RecordingLauncher.__call__ is original


def test_the_launcher_is_restored_when_the_capture_fails(launcher_module):
    original = RecordingLauncher.__call__
    with pytest.raises(RuntimeError, match="inside"), graph_capture.triton_launches_by_address():
        raise RuntimeError("given up inside the capture")
    assert RecordingLauncher.__call__ is original


def test_without_triton_the_capture_runs_unchanged(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton.backends.nvidia.driver", None)  # the import fails
    assert graph_capture._launcher_class() is None
    ran = []
    with graph_capture.triton_launches_by_address():
        ran.append(True)
    assert ran == [True]
