"""Fixtures of the kernel unit tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_cpu_thread():
    """Run a module's CPU work on one thread: its tensors are small and the test machines' 2 cores
    are shared, where OpenMP threads spend more time waiting for each other than they save
    (measured 10x slower wall time under load with 2 threads than with 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
