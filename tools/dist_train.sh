#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NPROC [train.py args...]
#
# NPROC processes on this node (one per GPU; on a CPU-only machine, CPU worker processes).
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT the same way on every node, e.g.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 tools/dist_train.sh CONFIG 8
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [train.py args...]" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/_launch_env.sh"
torchrun_node "$2" train.py "$1" --launcher pytorch "${@:3}"
