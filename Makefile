# The two commands of the README. Both set up whatever is missing first (tools/bootstrap.sh is
# idempotent), so they work on a fresh clone of a fresh machine.
PY := tools/hostpy

.PHONY: setup demo test lint test-gpu

setup:
	@tools/bootstrap.sh
	@$(PY) tools/tiny_models.py

demo: setup
	@$(PY) tools/demo.py

lint: setup
	@$(PY) -m ruff check .

test: lint
	@$(PY) -m pytest

# On a CUDA machine with the pack's GPU tests (see bench/ and tests/*gpu*).
test-gpu:
	@$(PY) -m pytest -m gpu
	@RTV_COMFY_GPU=1 $(PY) -m pytest -m gpu tests/integration/test_monarch_families_gpu.py
