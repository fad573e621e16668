#!/usr/bin/env bash
# Build one of hiera_mm's test environments (idempotent; a second run takes seconds).
#
#   bash tools/setup_env.sh            the main stack in ./.venv (MMDetection, MMSegmentation and
#                                      Detectron2 side by side)
#   bash tools/setup_env.sh oldest     the tested floors in ./.venv-oldest (what most MMDetection
#                                      users have: torch 2.1 with mmcv 2.1.0)
#
# Each stack is pinned by a constraints file written below; setup.py holds the supported ranges,
# whose ends these two stacks are (README, "Tested with").
# mmcv has no wheels for these torch builds here: it is compiled once per machine and torch version
# and cached under $HIERA_MM_CACHE (default ~/.cache/hiera_mm), keyed by python, torch, mmcv and
# ops flavour, so a fresh clone (CI, a second checkout) reuses it instead of compiling again.
# Detectron2 is not on PyPI: it is built from $HIERA_MM_DETECTRON2_ARCHIVE (a `git archive` of the
# pinned commit, checked against its sha256; the Makefile sets it where the archive exists) or else
# from GitHub at that commit, and cached the same way.
set -euo pipefail

PROFILE="${1:-main}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${HIERA_MM_CACHE:-$HOME/.cache/hiera_mm}"
MMCV_VERSION=2.1.0
DETECTRON2_COMMIT=02b5c4e295e990042a714712c21dc79b731e8833
DETECTRON2_ARCHIVE_SHA256=a42c29a2376e7bcc0b704a173612dd6f75960d837ccf4d340a0d714ac92e36f0

case "$PROFILE" in
main)
    VENV="${HIERA_MM_VENV:-$ROOT/.venv}"
    TORCH_VERSION=2.14.1
    TORCHVISION_VERSION=0.29.1
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17 after any CXXFLAGS.
    MMCV_CXX_STD=c++20
    # iopath: Detectron2 pins <0.1.10; sam2 (a test reference) runs with 0.1.9 too.
    STACK_PINS=(mmengine==0.10.7 mmdet==3.3.0 mmsegmentation==1.2.2 transformers==5.24.0
                iopath==0.1.9)
    EXTRAS='mmdet,mmseg,tests,deploy'
    ;;
oldest)
    VENV="${HIERA_MM_OLDEST_VENV:-$ROOT/.venv-oldest}"
    TORCH_VERSION=2.1.2
    TORCHVISION_VERSION=0.16.2
    MMCV_CXX_STD=c++17  # mmcv's own flag; torch 2.1 was its newest torch
    # torch 2.1 was built against numpy 1.x; opencv-python >= 4.11 needs numpy 2.
    STACK_PINS=(mmengine==0.10.0 mmdet==3.3.0 transformers==4.45.0 'numpy<2' 'opencv-python<4.11')
    EXTRAS='mmdet,tests'
    ;;
*)
    echo "usage: $0 [main|oldest]" >&2
    exit 2
    ;;
esac

log() { echo "[setup_env:$PROFILE] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

# Constraints keep every later install (mmdet, timm, ...) from swapping torch under the compiled
# mmcv, and hold the stack at the versions this environment tests.
CONSTRAINTS="$VENV/hiera_mm-constraints.txt"
{
    echo "torch==$TORCH_VERSION"
    echo "torchvision==$TORCHVISION_VERSION"
    echo "mmcv==$MMCV_VERSION"
    echo "setuptools<82"  # mmcv's setup.py and mmengine's `mmdet::` bases import pkg_resources
    printf '%s\n' "${STACK_PINS[@]}"
} > "$CONSTRAINTS"

if ! "$PY" -c "import torch, torchvision, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    log "installing torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION"
    "${PIP[@]}" install -c "$CONSTRAINTS" "pip>=24" "setuptools<82" wheel ninja
    "${PIP[@]}" install -c "$CONSTRAINTS" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" \
        $( [ "$PROFILE" = oldest ] && echo 'numpy<2' )
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
        log "building mmcv $MMCV_VERSION with ops against torch $TORCH_VERSION (10-30 min on 2 cores, once per machine)"
        SRC="$(mktemp -d)"
        "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation -d "$SRC" "mmcv==$MMCV_VERSION"
        tar -xzf "$SRC"/mmcv-*.tar.gz -C "$SRC"
        cd "$SRC/mmcv-$MMCV_VERSION"
        sed -i "s/-std=c++17/-std=$MMCV_CXX_STD/g" setup.py
        # --no-cache-dir: pip's wheel cache keys mmcv by version only and would hand this build to
        # another torch.
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
# The main environment holds hiera_mm as an editable install. The oldest one holds only its
# requirements (the tests put the checkout on PYTHONPATH), so that the wheel test can layer an
# environment on it and install the built wheel as a user would.
# Skipped when nothing changed since the last run.
STAMP="$VENV/hiera_mm-installed.txt"
WANT="$ROOT $(cat "$ROOT/setup.py" "$CONSTRAINTS" | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! "$PY" -c "
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ('mmdet', 'transformers', 'pytest', 'timm')
             + (('onnxruntime',) if '$PROFILE' == 'main' else ())))" 2>/dev/null; then
    if [ "$PROFILE" = main ]; then
        "${PIP[@]}" install -c "$CONSTRAINTS" -e "$ROOT[$EXTRAS]"
    else
        REQS="$("$PY" - "$ROOT" "$EXTRAS" <<'EOF'
import ast, sys
# install_requires and the named extras of setup.py, read without running it
root, extras = sys.argv[1], sys.argv[2].split(',')
tree = ast.parse(open(f'{root}/setup.py').read())
kw = {k.arg: k.value for n in ast.walk(tree) if isinstance(n, ast.Call)
      and getattr(n.func, 'id', '') == 'setup' for k in n.keywords}
reqs = ast.literal_eval(kw['install_requires'])
extra = ast.literal_eval(kw['extras_require'])
print('\n'.join(reqs + [r for e in extras for r in extra[e]]))
EOF
)"
        mapfile -t REQ_LIST <<< "$REQS"
        "${PIP[@]}" install -c "$CONSTRAINTS" "${REQ_LIST[@]}"
    fi
    echo "$WANT" > "$STAMP"
fi
if [ "$PROFILE" = main ]; then
    # SAM2 is a test-only reference (it needs torch >= 2.5.1, so only here). Its sdist builds CUDA
    # code and would pull a new torch by default, hence no deps (its small pure-python needs come
    # with the tests extra) and no CUDA build.
    if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('sam2') is None)" 2>/dev/null; then
        SAM2_BUILD_CUDA=0 "${PIP[@]}" install -c "$CONSTRAINTS" --no-deps --no-build-isolation sam2==1.1.0
    fi
fi
if [ "$PROFILE" = main ]; then
    d2_ok() { "$PY" -c "import detectron2, detectron2._C" 2>/dev/null; }
    if ! d2_ok; then
        PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
        D2_DIR="$CACHE/wheels/detectron2-${DETECTRON2_COMMIT:0:8}-torch$TORCH_VERSION-$PYTAG-$(uname -m)-cpu"
        mkdir -p "$D2_DIR"
        exec 8>"$D2_DIR.lock"
        flock 8
        if ! ls "$D2_DIR"/detectron2-*.whl >/dev/null 2>&1; then
            if [ -n "${HIERA_MM_DETECTRON2_ARCHIVE:-}" ]; then
                echo "$DETECTRON2_ARCHIVE_SHA256  $HIERA_MM_DETECTRON2_ARCHIVE" | sha256sum -c --quiet \
                    || { log "$HIERA_MM_DETECTRON2_ARCHIVE is not Detectron2 at ${DETECTRON2_COMMIT:0:8} (sha256 differs)"; exit 1; }
                D2_SRC="$HIERA_MM_DETECTRON2_ARCHIVE"
            else
                D2_SRC="git+https://github.com/facebookresearch/detectron2.git@$DETECTRON2_COMMIT"
            fi
            log "building Detectron2 ${DETECTRON2_COMMIT:0:8} against torch $TORCH_VERSION from $D2_SRC (1-3 min, once per machine)"
            "$PY" -m pip --disable-pip-version-check wheel --no-deps --no-build-isolation --no-cache-dir \
                -w "$D2_DIR" "$D2_SRC" > "$D2_DIR.build.log" 2>&1 \
                || { log "Detectron2 build failed, see $D2_DIR.build.log"; exit 1; }
        fi
        flock -u 8
        log "installing cached Detectron2 wheel from $D2_DIR"
        "${PIP[@]}" install -c "$CONSTRAINTS" "$D2_DIR"/detectron2-*.whl
    fi
fi
PYTHONPATH="$ROOT" "$PY" -c "import hiera_mm.mmdet, mmcv.ops" \
    || { log "hiera_mm.mmdet or mmcv.ops does not import after set-up (see above)"; exit 1; }
if [ "$PROFILE" = main ]; then
    PYTHONPATH="$ROOT" "$PY" -c "import hiera_mm.mmseg, hiera_mm.detectron2, detectron2._C" \
        || { log "hiera_mm.mmseg or hiera_mm.detectron2 does not import after set-up (see above)"; exit 1; }
fi
log "environment ready: $VENV"
