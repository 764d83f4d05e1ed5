#!/usr/bin/env bash
# The slow check of the GPU set-up (not part of CI; no GPU needed): build the CUDA stack in
# a separate virtual environment through `tools/setup_env.sh --cuda`, check that mmcv._ext
# holds CUDA kernels for the requested archs, then run the test suite on that stack (on the
# CPU, with the real torchvision).
#
# Usage: bash tools/analysis_tools/build_cuda_stack.sh [--venv DIR] [--skip-tests] [pytest args]
#   --venv DIR     the CUDA environment (default: ../venv-cuda beside the checkout)
#   --skip-tests   stop after the build checks
# Environment: TORCH_CUDA_ARCH_LIST (default "8.0;9.0" without a visible GPU), CUDA_HOME,
#   MAX_JOBS, MMCV_BUILD_LOG (default DIR/mmcv_build.log), NICE (default 15: the compile
#   yields the CPU to everything else on a shared machine).
# The mmcv compile takes about 4,500 CPU-seconds for two archs (37 minutes on 2 idle cores,
# docs/get_started.md); the set-up prints "mmcv 2.1.0 built in N s". A second run reuses
# the environment and only re-checks.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$(cd "$REPO/.." && pwd)/venv-cuda
TESTS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=$2; shift 2 ;;
    --skip-tests) TESTS=0; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
    *) break ;;
  esac
done
export MMCV_BUILD_LOG=${MMCV_BUILD_LOG:-$VENV/mmcv_build.log}
mkdir -p "$(dirname "$MMCV_BUILD_LOG")"
log() { printf '[cuda-stack %(%H:%M:%S)T] %s\n' -1 "$*"; }

# 1. The set-up, CUDA branch.
start=$(date +%s)
MMPSEARCH_VENV=$VENV nice -n "${NICE:-15}" bash "$REPO/tools/setup_env.sh" --cuda
log "set-up finished in $(( $(date +%s) - start )) s (the build log is $MMCV_BUILD_LOG)"
PY=$VENV/bin/python

# 2. The stack: a CUDA torch, the real torchvision, mmcv ops compiled with CUDA.
"$PY" - <<'PY'
import torch, torchvision, mmcv, mmcv.ops
from mmpsearch.utils import compat
cuda_ops = mmcv.ops.get_compiling_cuda_version()
print(f'torch {torch.__version__} (CUDA {torch.version.cuda}), torchvision '
      f'{torchvision.__version__}, mmcv {mmcv.__version__}: ops compiled with CUDA {cuda_ops}, '
      f'GPU visible: {torch.cuda.is_available()}')
assert torch.version.cuda, 'torch is not a CUDA build'
assert cuda_ops != 'not available', 'mmcv._ext was built without CUDA ops'
assert not compat.TORCHVISION_STUBBED, 'the torchvision stand-in is in use'
PY
ext=$("$PY" -c 'import glob, os, mmcv; print(glob.glob(os.path.join(os.path.dirname(mmcv.__file__), "_ext*.so"))[0])')
cuda_home=${CUDA_HOME:-$(nvcc --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -n1)/..}
cuobjdump=$(command -v cuobjdump || ls "$cuda_home/bin/cuobjdump" 2>/dev/null || true)
# the archs that must have a cubin (none to name when built for the visible GPUs)
want=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
    && [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
  want=""
fi
if [ -n "$cuobjdump" ]; then
  log "CUDA kernels in $ext (cubins per arch):"
  "$cuobjdump" --list-elf "$ext" | grep -o 'sm_[0-9]*' | sort | uniq -c
  for arch in ${want//;/ }; do
    sm=sm_${arch//./}
    sm=${sm%+PTX}
    "$cuobjdump" --list-elf "$ext" | grep -q "$sm" || { echo "no $sm cubin in $ext" >&2; exit 1; }
  done
else
  # a minimal toolkit: read the fat binaries from the file itself
  log "no cuobjdump here (a minimal toolkit); CUDA kernels in $ext (entries per arch):"
  "$PY" "$REPO/tools/analysis_tools/fatbin_archs.py" "$ext" ${want:+--require ${want//;/ }}
fi

# 3. The test suite on this stack (on the CPU).
if [ "$TESTS" = 1 ]; then
  cd "$REPO"
  log "test suite on this stack"
  "$PY" -m pytest -q -p no:cacheprovider "${@:-tests}"
fi
