# Sourced by the launch scripts (dist_train.sh, dist_test.sh, slurm_train.sh, slurm_test.sh): the
# project root on PYTHONPATH, the Python to run, torchrun on this node and srun on a cluster.
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

# srun_tasks PARTITION JOB_NAME SCRIPT ARGS...: one task of tools/SCRIPT per GPU on a Slurm
# partition; GPUS (8) tasks in all, GPUS_PER_NODE (8) per node, CPUS_PER_TASK (5) CPUs each,
# SRUN_ARGS passed on to srun. The script reads its rank from the Slurm environment
# (--launcher slurm in ARGS).
srun_tasks() {
    local partition=$1 job_name=$2 script=$3
    shift 3
    local gpus_per_node=${GPUS_PER_NODE:-8}
    set -x
    # SRUN_ARGS is split on white space on purpose (several srun options in one variable).
    # shellcheck disable=SC2086
    exec srun -p "$partition" \
        --job-name="$job_name" \
        --gres=gpu:"$gpus_per_node" \
        --ntasks="${GPUS:-8}" \
        --ntasks-per-node="$gpus_per_node" \
        --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "$PYTHON" -u "$TOOLS/$script" "$@"
}
