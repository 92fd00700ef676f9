"""The mark of the kernel tests that need the lent GPU."""

import importlib.util

import pytest
import torch

HAS_TRITON = importlib.util.find_spec("triton") is not None


def on_gpu(test):
    """GPU tests: marked ``gpu`` and skipped, with the reason, where CUDA or Triton is missing."""
    test = pytest.mark.skipif(not HAS_TRITON, reason="needs the triton package")(test)
    test = pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (run with -m gpu on the lent H100)"
    )(test)
    return pytest.mark.gpu(test)
