#!/usr/bin/env bash
# Set up (or refresh) the mmpsearch environment: a virtual environment with the pinned
# OpenMMLab stack of ../shared/spec/install.md, then mmpsearch itself.
#
# Usage: bash tools/setup_env.sh [--venv DIR] [--wheels DIR] [--dev]
#   --venv DIR    where the virtual environment lives (default: .venv in the repo root,
#                 or $MMPSEARCH_VENV)
#   --wheels DIR  a folder with a prebuilt mmcv-2.1.0 wheel; used when its tags match the
#                 interpreter, otherwise mmcv is compiled from the registry's source
#                 (default: $MMCV_WHEEL_DIR, else the project's shared wheel folder
#                 ../shared/wheels beside the checkout when it exists)
#   --dev         editable install of mmpsearch plus the test tools (mim needs a regular
#                 install, so the default is a regular one)
#
# Idempotent: a second run only re-checks the pins and re-installs mmpsearch.
# Never installs an unpinned torch: a CUDA torch already importable by the base
# interpreter is kept (the venv then sees the system site-packages), otherwise
# torch==$TORCH_VERSION (the CPU build on the project machines) is installed.
set -euo pipefail

TORCH_VERSION=${TORCH_VERSION:-2.13.0}
SETUPTOOLS_VERSION=80.9.0
MMENGINE_VERSION=0.10.7
MMCV_VERSION=2.1.0
MMDET_VERSION=3.3.0
MMPRETRAIN_VERSION=1.2.0

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMPSEARCH_VENV:-$REPO/.venv}
WHEELS=${MMCV_WHEEL_DIR:-}
if [ -z "$WHEELS" ] && [ -d "$REPO/../shared/wheels" ]; then
  WHEELS=$(cd "$REPO/../shared/wheels" && pwd)
fi
DEV=0
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --dev) DEV=1; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

BASE_PY=${PYTHON:-python3}
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }
start=$(date +%s)

# 1. The virtual environment; keep a CUDA torch of the base interpreter if there is one.
base_cuda_torch=$("$BASE_PY" - <<'PY' 2>/dev/null || true
try:
    import torch
    print(torch.__version__ if torch.version.cuda else '')
except Exception:
    print('')
PY
)
if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "$base_cuda_torch" ]; then
    log "creating $VENV with the system site-packages (keeping CUDA torch $base_cuda_torch)"
    "$BASE_PY" -m venv --system-site-packages "$VENV"
  else
    log "creating $VENV"
    "$BASE_PY" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
# pip install, quiet; some machines' pip config names index folders that do not exist, and
# pip warns once per package about them: drop those lines, keep every other message.
pip_install() {
  "$PY" -m pip install --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  return "${PIPESTATUS[0]}"
}
PIP=(pip_install)
export PATH="$VENV/bin:$PATH"

have_torch=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
if [ -n "$have_torch" ] && { [ -n "$base_cuda_torch" ] || [[ "$have_torch" == "$TORCH_VERSION"* ]]; }; then
  log "torch $have_torch already installed"
  "${PIP[@]}" "setuptools==$SETUPTOOLS_VERSION"
else
  log "installing torch==$TORCH_VERSION"
  "${PIP[@]}" "torch==$TORCH_VERSION" "setuptools==$SETUPTOOLS_VERSION"
fi

# 2. mmengine and the build helpers (pinned; numpy 2.x works throughout, install.md §7).
"${PIP[@]}" "mmengine==$MMENGINE_VERSION" numpy==2.4.6 opencv-python==5.0.0.93 ninja==1.13.2 \
  wheel "setuptools==$SETUPTOOLS_VERSION"

# 3. mmcv with compiled ops: a matching prebuilt wheel, or a build from source.
mmcv_ok() { "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; }
if mmcv_ok; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  wheel=""
  if [ -n "$WHEELS" ] && [ -d "$WHEELS" ]; then
    tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    cuda=$("$PY" -c 'import torch; print(torch.version.cuda or "")')
    cand=$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-"$tag"-"$tag"-linux_x86_64.whl 2>/dev/null | head -n1 || true)
    # The shared wheel is a CPU build for torch 2.13: never use it with a CUDA torch.
    if [ -n "$cand" ] && [ -z "$cuda" ]; then wheel=$cand; fi
  fi
  if [ -n "$wheel" ]; then
    log "installing mmcv from $wheel"
    "${PIP[@]}" --no-deps "$wheel"
  else
    cuda=$("$PY" -c 'import torch; print(torch.version.cuda or "")')
    build_env=(MMCV_WITH_OPS=1 "CFLAGS=-O3 -g0 -DNDEBUG" "CXXFLAGS=-O3 -g0 -DNDEBUG" "MAX_JOBS=${MAX_JOBS:-$(nproc)}")
    if [ -n "$cuda" ] && command -v nvcc >/dev/null && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
      arch=$("$PY" -c 'import torch; print(";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})))')
      log "building mmcv $MMCV_VERSION with CUDA ops for arch $arch (CUDA $cuda)"
      build_env+=(FORCE_CUDA=1 "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch}")
    else
      log "building mmcv $MMCV_VERSION with CPU ops (about 9 minutes on 2 cores)"
    fi
    tmp=$(mktemp -d)
    env -u FORCE_CUDA "${build_env[@]}" "$PY" -m pip wheel --disable-pip-version-check -q \
      --no-build-isolation --no-deps --no-binary mmcv "mmcv==$MMCV_VERSION" -w "$tmp"
    "${PIP[@]}" --no-deps "$tmp"/mmcv-*.whl
    rm -rf "$tmp"
  fi
  mmcv_ok || { echo "setup_env.sh: mmcv $MMCV_VERSION installed but 'import mmcv.ops' fails" >&2; exit 1; }
fi

# 4. mmdet and mmpretrain without their dependency resolution, then their runtime deps.
"${PIP[@]}" --no-deps "mmdet==$MMDET_VERSION" "mmpretrain==$MMPRETRAIN_VERSION"
"${PIP[@]}" pycocotools==2.0.11 scipy==1.17.1 shapely==2.2.0 six terminaltables==3.1.10 tqdm \
  einops==0.8.2 importlib-metadata mat4py==0.6.0 modelindex==0.0.2 pytest==9.2.0
# the gallery index's approximate backend (the mmpsearch[index] extra; its tests need it)
"${PIP[@]}" faiss-cpu==1.15.1
# openmim pins an old setuptools in its metadata: install it without deps, then its light deps.
"${PIP[@]}" --no-deps openmim==0.3.9
"${PIP[@]}" click colorama model-index pandas requests tabulate rich

# 5. mmpsearch itself.
if [ "$DEV" = 1 ]; then
  log "installing mmpsearch (editable; use 'python tools/train.py', mim needs a regular install)"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$REPO"
else
  log "installing mmpsearch"
  "${PIP[@]}" --no-deps --no-build-isolation --force-reinstall "$REPO"
fi
"$PY" -c 'import mmpsearch, mmdet, mmpretrain.models; print("mmpsearch", mmpsearch.__version__, "| mmdet", mmdet.__version__)'
log "done in $(( $(date +%s) - start )) s; activate with: source $VENV/bin/activate"
