#!/usr/bin/env bash
# Set up the environment (tools/setup_env.sh, idempotent) and run the CPU test suite.
# Usage: bash tools/run_tests.sh [pytest args]     e.g. bash tools/run_tests.sh tests/test_evaluation
# A prebuilt mmcv wheel folder can be given with MMCV_WHEEL_DIR=... (CI passes ../shared/wheels).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
bash tools/setup_env.sh ${MMCV_WHEEL_DIR:+--wheels "$MMCV_WHEEL_DIR"}
VENV=${MMPSEARCH_VENV:-$REPO/.venv}
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "run_tests.sh: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
