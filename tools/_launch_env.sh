# Sourced by the launch scripts (dist_train.sh, dist_test.sh, slurm_train.sh): the project root
# on PYTHONPATH, the Python to run, and torchrun on this node.
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$TOOLS")"
# The project's virtual environment unless PYTHON names another interpreter.
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# torchrun_node NPROC SCRIPT ARGS...: NPROC processes of tools/SCRIPT on this node. Multi-node:
# set NNODES, NODE_RANK, MASTER_ADDR and PORT the same way on every node.
torchrun_node() {
    local nproc=$1 script=$2
    shift 2
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --master_port="${PORT:-29500}" \
        --nproc_per_node="$nproc" \
        "$TOOLS/$script" "$@"
}
