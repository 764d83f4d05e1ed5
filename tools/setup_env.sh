#!/usr/bin/env bash
# Set up (or refresh) the mmpsearch environment: a virtual environment with the pinned
# OpenMMLab stack of ../shared/spec/install.md, then mmpsearch itself.
#
# Usage: bash tools/setup_env.sh [--venv DIR] [--wheels DIR] [--dev] [--cuda]
#   --venv DIR    where the virtual environment lives (default: .venv in the repo root,
#                 or $MMPSEARCH_VENV)
#   --wheels DIR  a folder with a prebuilt mmcv-2.1.0 wheel; used when its tags match the
#                 interpreter, otherwise mmcv is compiled from the registry's source
#                 (default: $MMCV_WHEEL_DIR, else the project's shared wheel folder
#                 ../shared/wheels beside the checkout when it exists)
#   --dev         editable install of mmpsearch plus the test tools (mim needs a regular
#                 install, so the default is a regular one)
#   --cuda        GPU machine: install the CUDA build of torch (the pinned pair
#                 torch==$TORCH_CUDA_VERSION torchvision==$TORCHVISION_CUDA_VERSION, default
#                 2.14.1 / 0.29.1) and compile mmcv's CUDA ops; the same as TORCH_CUDA=1
#
# Idempotent: a second run only re-checks the pins and re-installs mmpsearch.
# Never installs an unpinned torch: a CUDA torch already importable by the base
# interpreter is kept (the venv then sees the system site-packages), otherwise
# torch==$TORCH_VERSION (default 2.13.0, the CPU build on the project machines) is
# installed, or the CUDA pair above with --cuda.
#
# mmcv's CUDA ops are compiled when torch is a CUDA build and nvcc is found ($CUDA_HOME/bin
# or PATH), with FORCE_CUDA=1, MAX_JOBS=$(nproc) and CFLAGS/CXXFLAGS "-O3 -g0 -DNDEBUG":
#   TORCH_CUDA_ARCH_LIST  the GPU archs to build for. Default: the visible GPUs' archs, or,
#                 with no GPU visible (a build machine), "8.0;9.0" (A100, H100/H200).
#                 E.g. "8.6" for RTX 30xx/A10, "8.9" for L4/RTX 40xx, "10.0" for B200.
#   CUDA_HOME     the toolkit; default: the folder nvcc really runs from (nvcc may be a
#                 wrapper in /usr/local/bin, and torch's own guess then fails to link -lcudart)
#   MMCV_BUILD_LOG=FILE  keep the compiler's full output there, each line timestamped
# A toolkit without the cuSPARSE/cuBLAS headers torch's CUDA headers include (nvcc + cudart
# only) is completed from the nvidia-* wheels installed with the CUDA torch (via CPATH).
# torch >= 2.14 needs C++20: mmcv 2.1.0's setup.py is then built from its sdist with its
# -std=c++17 raised to c++20 (docs/get_started.md, "GPU machine").
set -euo pipefail

TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CUDA=${TORCH_CUDA:-0}
TORCH_CUDA_VERSION=${TORCH_CUDA_VERSION:-2.14.1}
TORCHVISION_CUDA_VERSION=${TORCHVISION_CUDA_VERSION:-0.29.1}
DEFAULT_CUDA_ARCH_LIST="8.0;9.0"
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
    --cuda) TORCH_CUDA=1; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
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
if [ "$TORCH_CUDA" = 1 ] && [ -z "$base_cuda_torch" ]; then
  # The CUDA build of torch and its matching torchvision (torchvision pins torch exactly).
  have_cuda=$("$PY" -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null || true)
  if [[ "$have_torch" == "$TORCH_CUDA_VERSION"* ]] && [ -n "$have_cuda" ] \
      && "$PY" -c 'import torchvision' 2>/dev/null; then
    log "torch $have_torch (CUDA $have_cuda) and torchvision already installed"
    "${PIP[@]}" "setuptools==$SETUPTOOLS_VERSION"
  else
    log "installing torch==$TORCH_CUDA_VERSION torchvision==$TORCHVISION_CUDA_VERSION (CUDA build, ~5.5 GB)"
    "${PIP[@]}" "torch==$TORCH_CUDA_VERSION" "torchvision==$TORCHVISION_CUDA_VERSION" \
      "setuptools==$SETUPTOOLS_VERSION"
  fi
elif [ -n "$have_torch" ] && { [ -n "$base_cuda_torch" ] || [[ "$have_torch" == "$TORCH_VERSION"* ]]; }; then
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
# The toolkit for a CUDA build: CUDA_HOME, else where nvcc really runs from (its --dryrun
# prints that folder as _HERE_; /usr/local/bin/nvcc may be a wrapper script).
find_cuda_home() {
  if [ -n "${CUDA_HOME:-}" ]; then echo "$CUDA_HOME"; return; fi
  command -v nvcc >/dev/null || return 0
  local here
  here=$(nvcc --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -n1)
  [ -n "$here" ] || here=$(dirname "$(readlink -f "$(command -v nvcc)")")
  (cd "$here/.." && pwd)
}
torch_cuda=$("$PY" -c 'import torch; print(torch.version.cuda or "")')
cuda_home=""
if [ -n "$torch_cuda" ]; then cuda_home=$(find_cuda_home); fi
want_cuda_ops=0
if [ -n "$cuda_home" ] && [ -x "$cuda_home/bin/nvcc" ]; then
  want_cuda_ops=1
elif [ -n "$torch_cuda" ] && [ -n "${CUDA_HOME:-}" ]; then
  echo "setup_env.sh: CUDA_HOME=$CUDA_HOME has no bin/nvcc" >&2; exit 1
elif [ "$TORCH_CUDA" = 1 ]; then
  echo "setup_env.sh: --cuda needs nvcc (a CUDA toolkit on PATH, or CUDA_HOME) to compile" \
    "mmcv's CUDA ops" >&2; exit 1
fi
mmcv_ok() {
  "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null || return 1
  if [ "$want_cuda_ops" = 1 ]; then  # a CPU-ops mmcv is not enough on a CUDA torch
    "$PY" -c "import sys, mmcv.ops; sys.exit(mmcv.ops.get_compiling_cuda_version() == 'not available')" 2>/dev/null
  fi
}
if mmcv_ok; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  wheel=""
  if [ -n "$WHEELS" ] && [ -d "$WHEELS" ]; then
    tag=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    cand=$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"-"$tag"-"$tag"-linux_x86_64.whl 2>/dev/null | head -n1 || true)
    # The shared wheel is a CPU build for torch 2.13: never use it with a CUDA torch.
    if [ -n "$cand" ] && [ -z "$torch_cuda" ]; then wheel=$cand; fi
  fi
  if [ -n "$wheel" ]; then
    log "installing mmcv from $wheel"
    "${PIP[@]}" --no-deps "$wheel"
  else
    build_env=(MMCV_WITH_OPS=1 "CFLAGS=-O3 -g0 -DNDEBUG" "CXXFLAGS=-O3 -g0 -DNDEBUG" "MAX_JOBS=${MAX_JOBS:-$(nproc)}")
    if [ "$want_cuda_ops" = 1 ]; then
      if "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        arch=$("$PY" -c 'import torch; print(";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})))')
      else
        arch=$DEFAULT_CUDA_ARCH_LIST  # no GPU visible: build for the archs asked for
      fi
      arch=${TORCH_CUDA_ARCH_LIST:-$arch}
      log "building mmcv $MMCV_VERSION with CUDA ops for arch '$arch' (torch CUDA $torch_cuda, CUDA_HOME=$cuda_home, MAX_JOBS=${build_env[3]#MAX_JOBS=}); about an hour on 2 cores"
      build_env+=(FORCE_CUDA=1 "TORCH_CUDA_ARCH_LIST=$arch" "CUDA_HOME=$cuda_home" "PATH=$cuda_home/bin:$PATH")
      # torch's ATen/cuda/CUDAContext.h includes cuSPARSE/cuBLAS/cuSOLVER headers. A minimal
      # toolkit (nvcc + cudart only, as on the project's build machines) lacks them; the
      # nvidia-* wheels that came with the CUDA torch ship them (nvidia/cu13/include, or
      # nvidia/<lib>/include for CUDA 12): put those folders on the compilers' CPATH.
      if [ ! -f "$cuda_home/include/cusparse.h" ] || [ ! -f "$cuda_home/include/cublas_v2.h" ]; then
        wheel_inc=$("$PY" - <<'PY'
import glob, os, sysconfig
roots = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
heads = ('cusparse.h', 'cublas_v2.h', 'cublasLt.h', 'cusolverDn.h')
print(':'.join(sorted({os.path.dirname(p) for r in roots for h in heads
                       for p in glob.glob(os.path.join(r, 'nvidia', '*', 'include', h))})))
PY
)
        if [ -z "$wheel_inc" ]; then
          echo "setup_env.sh: $cuda_home has no cusparse.h/cublas_v2.h and torch's nvidia-* wheels" \
            "ship none either; install the CUDA toolkit's math-library headers" >&2; exit 1
        fi
        log "math-library headers from torch's nvidia-* wheels: $wheel_inc"
        build_env+=("CPATH=$wheel_inc${CPATH:+:$CPATH}")
      fi
    else
      log "building mmcv $MMCV_VERSION with CPU ops (about 9 minutes on 2 cores)"
    fi
    tmp=$(mktemp -d)
    build_start=$(date +%s)
    source_spec="mmcv==$MMCV_VERSION"
    # torch >= 2.14's headers need C++20 (ATen.h: "#error C++20 or later compatible compiler
    # is required to use ATen"), but mmcv 2.1.0's setup.py passes -std=c++17 to both the C++
    # compiler and nvcc. Build from the sdist with that one flag raised to C++20; older torch
    # (2.13, the CPU default) builds the registry's sdist unchanged.
    if "$PY" -c 'import sys, torch; from torch.torch_version import TorchVersion as V; sys.exit(V(torch.__version__) < "2.14")'; then
      log "patching mmcv $MMCV_VERSION's setup.py for C++20 (torch $("$PY" -c 'import torch; print(torch.__version__)'))"
      "$PY" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
        --no-build-isolation "mmcv==$MMCV_VERSION" -d "$tmp/sdist" 2>&1 \
        | { grep -v "^WARNING: Location '.*' is ignored" || true; }
      tar -xzf "$tmp/sdist/mmcv-$MMCV_VERSION.tar.gz" -C "$tmp/sdist"
      source_spec="$tmp/sdist/mmcv-$MMCV_VERSION"
      sed -i "s/'-std=c++17'/'-std=c++20'/g" "$source_spec/setup.py"
      if grep -q "'-std=c++17'" "$source_spec/setup.py" || ! grep -q "'-std=c++20'" "$source_spec/setup.py"; then
        echo "setup_env.sh: could not raise mmcv's -std=c++17 to c++20 in $source_spec/setup.py" >&2; exit 1
      fi
    fi
    build_cmd=(env -u FORCE_CUDA "${build_env[@]}" "$PY" -m pip wheel --disable-pip-version-check
      --no-build-isolation --no-deps --no-binary mmcv "$source_spec" -w "$tmp")
    if [ -n "${MMCV_BUILD_LOG:-}" ]; then
      log "compiler output: $MMCV_BUILD_LOG"
      set +e
      "${build_cmd[@]}" -v 2>&1 | while IFS= read -r line; do printf '[%(%H:%M:%S)T] %s\n' -1 "$line"; done \
        >>"$MMCV_BUILD_LOG"
      rc=${PIPESTATUS[0]}
      set -e
      if [ "$rc" != 0 ]; then
        echo "setup_env.sh: the mmcv build failed (exit $rc); see $MMCV_BUILD_LOG" >&2; exit "$rc"
      fi
    else
      "${build_cmd[@]}" -q
    fi
    log "mmcv $MMCV_VERSION built in $(( $(date +%s) - build_start )) s"
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
