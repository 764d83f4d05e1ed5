#!/usr/bin/env bash
# The quickstart main job: set up (idempotent), generate the synthetic person-search data set
# (PRW raw layout), train a small SPNet on the CPU with `mim train`, evaluate it, and draw
# ranked search results for a few test queries.
#
# Usage: bash tools/quickstart.sh [--work-dir DIR] [--data-root DIR] [--seed N]
# Prints the untrained and trained search mAP / top-1, re-id mAP and detection AP; writes
# DIR/search_examples.png. --seed sets the training seed (default: the config's, 0).
# About 15 minutes on a 2-core CPU (docs/get_started.md).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK_DIR=$REPO/work_dirs/quickstart
DATA_ROOT=$REPO/data/synthetic_prw
CONFIG=spnet-s_convnext-atto_quickstart_synthetic-prw.py
SEED=
while [ $# -gt 0 ]; do
  case "$1" in
    --work-dir) WORK_DIR=$2; shift 2 ;;
    --data-root) DATA_ROOT=$2; shift 2 ;;
    --seed) SEED=${2:-}; shift $(( $# > 1 ? 2 : 1 ))
      case "$SEED" in
        ''|*[!0-9]*) echo "quickstart.sh: --seed needs a non-negative integer, got '$SEED'" >&2
                     exit 2 ;;
      esac ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "quickstart.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
start=$(date +%s)
bash "$REPO/tools/setup_env.sh" ${MMCV_WHEEL_DIR:+--wheels "$MMCV_WHEEL_DIR"}
VENV=${MMPSEARCH_VENV:-$REPO/.venv}
export PATH="$VENV/bin:$PATH"
PY="$VENV/bin/python"
mkdir -p "$WORK_DIR"
CFG_OPTS=(--cfg-options "train_dataloader.dataset.data_root=$DATA_ROOT"
          "val_dataloader.dataset.data_root=$DATA_ROOT" "test_dataloader.dataset.data_root=$DATA_ROOT")
TRAIN_OPTS=("${CFG_OPTS[@]}")
[ -z "$SEED" ] || TRAIN_OPTS+=("randomness.seed=$SEED")

echo "== 1/3 synthetic data set (PRW raw layout) -> $DATA_ROOT"
"$PY" "$REPO/tools/make_synthetic.py" --layout prw --out "$DATA_ROOT" --seed 0 --skip-existing

echo "== 2/3 training (mim train mmpsearch $CONFIG); the untrained model is evaluated first"
# mim resolves the config by name inside the installed package; run from the work dir to
# show that nothing depends on the checkout's location.
(cd "$WORK_DIR" && mim train mmpsearch "$CONFIG" --work-dir "$WORK_DIR" "${TRAIN_OPTS[@]}")

echo "== 3/3 evaluation, result dump and ranked search results"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
"$PY" "$REPO/tools/test.py" "$REPO/configs/spnet/$CONFIG" "$CKPT" --work-dir "$WORK_DIR/test" \
  --out "$WORK_DIR/results.pkl" "${CFG_OPTS[@]}"
"$PY" "$REPO/tools/analysis_tools/browse_results.py" "$REPO/configs/spnet/$CONFIG" \
  "$WORK_DIR/results.pkl" --num-queries 4 --topk 5 --out "$WORK_DIR/search_examples.png" "${CFG_OPTS[@]}"
echo "quickstart finished in $(( $(date +%s) - start )) s; ranked results: $WORK_DIR/search_examples.png"
