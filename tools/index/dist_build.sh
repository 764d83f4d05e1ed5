#!/usr/bin/env bash
# Build a gallery index with several processes (gloo; CPU or GPU): each rank indexes its
# share of the frames (mmengine's DefaultSampler) into INDEX/parts/rank<r>, rank 0 merges
# the parts in frame order (the same index as one process builds).
# Usage: bash tools/index/dist_build.sh CONFIG CHECKPOINT NPROC --gallery ... --out INDEX [build.py args]
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
PORT=${PORT:-29510}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/../..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run --nnodes=1 --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$(dirname "$0")/build.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
