#!/usr/bin/env bash
# One call on the lent GPU for issue 5: GPU tests, then bench/attention.py. Logs and JSON to $OUT.
# Usage (device tool, carrying .whl with SageAttention 1.0.6): bash bench/run_monarch_gpu.sh [shapes]
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.backends.cudnn.version())" | tee -a "$OUT/gpu.txt"
# Fail fast (and cheaply) if a kernel does not compile or is wrong on the simplest case.
timeout 120 python3 -m pytest -q -m gpu tests/unit/test_monarch_triton.py -k "every_mode and default-full-random" 2>&1 \
  | tee "$OUT/smoke.log" | tail -5
grep -q "^1 passed" "$OUT/smoke.log" || { echo "smoke test failed"; exit 1; }
timeout "${TEST_TIMEOUT:-260}" python3 -m pytest -q -m gpu -rf --durations=8 tests/unit/test_monarch_triton.py \
  --junitxml="$OUT/tests.xml" 2>&1 | tee "$OUT/tests.log" | tail -40
timeout "${BENCH_TIMEOUT:-330}" python3 bench/attention.py --shapes "${1:-chunk_last,chunk_middle,full_480p,full_720p}" \
  --out "$OUT/attention.json" 2>&1 | tee "$OUT/bench.log" | tail -40
cp ~/.cache/comfyui-realtimevideo/monarch_autotune.json "$OUT/" 2>/dev/null || true
