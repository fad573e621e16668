#!/usr/bin/env bash
# Build the hiera_mm environment in ./.venv (idempotent; a second run takes seconds).
#
# The stack is pinned because its pieces only fit together at these versions (see README, "Install"):
#   torch 2.14.1 + torchvision 0.29.1 (the pair that imports together; timm / sam2 need torchvision),
#   mmcv 2.1.0 built from source with its ops (mmdet 3.3.0 refuses mmcv >= 2.2),
#   setuptools < 82 (mmcv's setup.py and mmengine's `mmdet::` config bases use pkg_resources).
# mmcv has no wheels for this torch: it is compiled once per machine and cached under
# $HIERA_MM_CACHE (default ~/.cache/hiera_mm), keyed by python, torch and mmcv version, so a fresh
# clone (CI, a second checkout) reuses it instead of compiling for 16+ minutes again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HIERA_MM_VENV:-$ROOT/.venv}"
CACHE="${HIERA_MM_CACHE:-$HOME/.cache/hiera_mm}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0

log() { echo "[setup_env] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

# Constraints keep every later install (mmdet, timm, ...) from swapping torch under the compiled mmcv.
CONSTRAINTS="$VENV/hiera_mm-constraints.txt"
cat > "$CONSTRAINTS" <<CONS
torch==$TORCH_VERSION
torchvision==$TORCHVISION_VERSION
mmcv==$MMCV_VERSION
setuptools<82
CONS

if ! "$PY" -c "import torch, torchvision, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    log "installing torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION"
    "${PIP[@]}" install -c "$CONSTRAINTS" "pip>=24" "setuptools<82" wheel ninja
    "${PIP[@]}" install -c "$CONSTRAINTS" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

mmcv_ok() { "$PY" -c "import mmcv, mmcv.ops, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; }

if ! mmcv_ok; then
    PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    # mmcv compiles its CUDA ops only where torch sees a GPU (or FORCE_CUDA=1): key on that too.
    OPS="$("$PY" -c 'import os, torch; cuda = os.environ.get("FORCE_CUDA") == "1" or torch.cuda.is_available(); print("cu" + torch.version.cuda.replace(".", "") if cuda and torch.version.cuda else "cpu")')"
    WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$PYTAG-$(uname -m)-$OPS"
    mkdir -p "$WHEEL_DIR"
    # One build per machine, even when several checkouts set up at once.
    exec 9>"$WHEEL_DIR.lock"
    flock 9
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VERSION with ops against torch $TORCH_VERSION (about 16 min on 2 cores, once per machine)"
        SRC="$(mktemp -d)"
        "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation -d "$SRC" "mmcv==$MMCV_VERSION"
        tar -xzf "$SRC"/mmcv-*.tar.gz -C "$SRC"
        cd "$SRC/mmcv-$MMCV_VERSION"
        # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17 after any CXXFLAGS.
        sed -i 's/-std=c++17/-std=c++20/g' setup.py
        MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$PY" -m pip --disable-pip-version-check wheel --no-deps --no-build-isolation --no-cache-dir \
            -w "$SRC/dist" . > "$WHEEL_DIR.build.log" 2>&1 \
            || { log "mmcv build failed, see $WHEEL_DIR.build.log"; exit 1; }
        mv "$SRC"/dist/mmcv-*.whl "$WHEEL_DIR/"
        cd "$ROOT"
        rm -rf "$SRC"
    fi
    flock -u 9
    log "installing cached mmcv wheel from $WHEEL_DIR"
    "${PIP[@]}" install --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
fi

# mmcv is already in place, so pip resolves it as satisfied and never builds it in isolation.
# Skipped when this checkout is installed already and setup.py did not change.
STAMP="$VENV/hiera_mm-installed.txt"
WANT="$ROOT $(sha256sum "$ROOT/setup.py" | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! "$PY" -c "
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ('hiera_mm', 'mmdet', 'transformers', 'pytest', 'timm')))" 2>/dev/null; then
    "${PIP[@]}" install -c "$CONSTRAINTS" -e "$ROOT[tests]"
    echo "$WANT" > "$STAMP"
fi
# SAM2 is a test-only reference. Its sdist builds CUDA code and would pull a new torch by default,
# hence no deps (its small pure-python needs come with the tests extra) and no CUDA build.
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('sam2') is None)" 2>/dev/null; then
    SAM2_BUILD_CUDA=0 "${PIP[@]}" install -c "$CONSTRAINTS" --no-deps --no-build-isolation sam2==1.1.0
fi
"$PY" -c "import hiera_mm, mmcv.ops" || { log "hiera_mm or mmcv.ops does not import after set-up (see above)"; exit 1; }
log "environment ready: $VENV"
