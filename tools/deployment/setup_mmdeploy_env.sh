#!/usr/bin/env bash
# An environment for mmdeploy 1.3.1 (onnxruntime backend), layered on the tested floors.
#
#   bash tools/deployment/setup_mmdeploy_env.sh          ->  ./.venv-mmdeploy (idempotent)
#
# mmdeploy 1.3.1 (December 2023, the last release) was built for torch <= 2.1 and needs
# protobuf <= 3.20.2, so it does not go into the main stack (torch 2.14). It goes on top of
# ./.venv-oldest (torch 2.1.2, mmcv 2.1.0 with ops, mmengine 0.10.0, mmdet 3.3.0; built by
# `bash tools/setup_env.sh oldest`): a new venv whose site-packages list .venv-oldest's through a
# .pth file (a venv made from a venv would take the base interpreter's packages instead), plus
# mmdeploy, mmdeploy-runtime, onnxruntime 1.15.1 (the version mmdeploy's custom-op library
# libmmdeploy_onnxruntime_ops.so, shipped in its wheel, was built against), protobuf 3.20.2 and
# MMSegmentation 1.2.2. Nothing in .venv-oldest changes (its constraints file pins its stack).
# hiera_mm and hiera_mm_tools (the deploy configs import its rewrite) come from the checkout:
# run with PYTHONPATH=<checkout>.
# Measured here (2 cores, packages from the local index): 20-35 s once .venv-oldest exists.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BASE="${HIERA_MM_OLDEST_VENV:-$ROOT/.venv-oldest}"
VENV="${HIERA_MM_MMDEPLOY_VENV:-$ROOT/.venv-mmdeploy}"
log() { echo "[setup_mmdeploy_env] $*"; }

if [ ! -x "$BASE/bin/python" ]; then
    echo "$BASE missing: build it first with 'bash tools/setup_env.sh oldest'" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV on top of $BASE"
    "$BASE/bin/python" -m venv "$VENV"
fi
PY="$VENV/bin/python"
site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
base_site="$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$base_site" > "$site/layer_on_oldest.pth"

# The floors' pins (torch, mmcv, mmengine, mmdet, numpy < 2) hold for everything installed here.
constraints="$VENV/hiera_mm-mmdeploy-constraints.txt"
cat "$BASE/hiera_mm-constraints.txt" > "$constraints"
printf '%s\n' 'mmdeploy==1.3.1' 'mmdeploy-runtime==1.3.1' 'onnxruntime==1.15.1' \
    'protobuf<=3.20.2' 'mmsegmentation==1.2.2' >> "$constraints"
log "installing mmdeploy 1.3.1, mmdeploy-runtime, onnxruntime 1.15.1, mmsegmentation 1.2.2"
"$PY" -m pip --disable-pip-version-check -q install -c "$constraints" \
    mmdeploy mmdeploy-runtime onnxruntime protobuf mmsegmentation ftfy regex

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" - <<'EOF'
import mmcv.ops  # noqa: F401  (the compiled ops of .venv-oldest)
import mmdeploy
import mmdet
import mmseg
import onnxruntime
import torch
from mmdeploy.backend.onnxruntime.init_plugins import get_ops_path
assert get_ops_path(), "mmdeploy's onnxruntime custom-op library is missing"
import hiera_mm_tools.export.mmdeploy_rewrites  # noqa: F401  (what configs/deploy import)
print(f'[setup_mmdeploy_env] ready: mmdeploy {mmdeploy.__version__}, torch {torch.__version__}, '
      f'onnxruntime {onnxruntime.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}')
EOF
