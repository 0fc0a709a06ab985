#!/usr/bin/env bash
# Builds the CUDA `trader` binary from scratch on a machine without a GPU and
# without a CUDA toolkit, with NVIDIA's wheels from PyPI only (issue 19).
#
#   scripts/build_cuda.sh [--bundle DIR] [--test]
#
# What it does, each step skipped when already done:
#   1. pip download (no install, no deps) of the CUDA 13.0 wheels into
#      $CUDA_CACHE/wheels: nvcc + crt + nvvm (the compiler: the cu12 wheels carry
#      only ptxas and libnvvm, no nvcc), runtime, cccl (thrust/cub, used by
#      candle's kernels), and the libraries the binary links (cuBLAS, cuRAND,
#      NVRTC), then unzips them into one toolkit tree $CUDA_CACHE/unz/nvidia/cu13
#      (bin/nvcc, include/, lib/, nvvm/) with the unversioned .so links a linker needs.
#   2. A link-time stub libcuda.so (lib/stubs; the driver's library is not on
#      PyPI): every cu* function cudarc declares, each returning
#      CUDA_ERROR_NO_DEVICE. Only the linker sees it; at run time the binary
#      loads the driver's libcuda.so.1.
#   3. cargo build --release --locked -p trader-cli --features cuda in its own
#      target folder, with an rpath $ORIGIN/lib so that a bundle works without
#      LD_LIBRARY_PATH. candle-kernels compiles its PTX and a static MoE/GGUF
#      library with nvcc for CUDA_COMPUTE_CAP; cudarc is built with candle's
#      `dynamic-linking`: the binary NEEDs libcuda, libcublas(Lt), libcurand,
#      libcudart (and libnvrtc if referenced) at start.
#   4. With --bundle DIR: DIR/trader plus DIR/lib/ with every library the
#      binary needs that a bare machine with only the NVIDIA driver may lack
#      (not libcuda.so.1, which is the driver's, nor glibc's own libraries),
#      and DIR/cuda_context_probe (scripts/gpu_check.sh's "context alone" row).
#   5. With --test: the ensemble's per-device tests with the feature on
#      (cargo test --release -p trader-cli -p trader-ensemble --features
#      trader-cli/cuda --test ensemble):
#      `NAME::cuda` runs on GPU 0, or says "skipped" where no device opens; on
#      a machine without a driver the stub stands in for libcuda.so.1 so that
#      the test binary starts at all.
#
# Environment (all optional):
#   CUDA_COMPUTE_CAP  90 (H100/H200). 86: RTX 30xx/A-series 8 GB class cards,
#                     89: RTX 40xx (Ada). The PTX is for that capability: it
#                     JIT-compiles on that GPU and newer, not on older ones.
#   CUDA_CACHE        /work/cuda-cache (wheels, toolkit tree, pip cache)
#   CUDA_TARGET_DIR   /work/cuda-target (the build's CARGO_TARGET_DIR; never
#                     the CI folder: other features, other profile)
#   CUDA_JOBS         cargo jobs and nvcc's parallelism (default: all cores)
# Needs: python3 with pip, a C/C++ compiler nvcc accepts (gcc <= 15), cargo.
# The result runs where an NVIDIA driver for CUDA 13 is installed (>= 580).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUNDLE=""
TEST=0
while [ $# -gt 0 ]; do
  case $1 in
    --bundle) BUNDLE=${2:?"--bundle needs a folder"}; shift ;;
    --test) TEST=1 ;;
    *) echo "usage: $0 [--bundle DIR] [--test]" >&2; exit 2 ;;
  esac
  shift
done
CUDA_CACHE=${CUDA_CACHE:-/work/cuda-cache}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-/work/cuda-target}
JOBS=${CUDA_JOBS:-$(nproc)}
WHEELS=$CUDA_CACHE/wheels
TOOLKIT=$CUDA_CACHE/unz/nvidia/cu13

# The CUDA 13.0 series: the oldest 13.x, so the widest range of 580+ drivers.
PACKAGES=(
  "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*"
  "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl>=13.0,<13.1"
  "nvidia-cuda-nvrtc==13.0.*" "nvidia-cublas>=13.0,<13.1" "nvidia-curand>=10.4.0,<10.4.1"
)

step() { printf '== %s (%ss)\n' "$1" "$SECONDS"; }

fetch_wheels() {
  if [ -f "$WHEELS/.done" ]; then return; fi
  step "pip download: ${PACKAGES[*]}"
  mkdir -p "$WHEELS"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_28_x86_64 --python-version 3.11 \
    --cache-dir "$CUDA_CACHE/pip" -d "$WHEELS" "${PACKAGES[@]}"
  touch "$WHEELS/.done"
}

unpack_toolkit() {
  if [ -f "$TOOLKIT/.done" ]; then return; fi
  step "unpack into $TOOLKIT"
  rm -rf "$CUDA_CACHE/unz"
  mkdir -p "$CUDA_CACHE/unz"
  for wheel in "$WHEELS"/*.whl; do
    python3 -m zipfile -e "$wheel" "$CUDA_CACHE/unz"
  done
  # zip does not keep the executable bit
  chmod +x "$TOOLKIT"/bin/* "$TOOLKIT"/nvvm/bin/*
  # the linker wants libX.so; the wheels ship libX.so.N only
  for lib in "$TOOLKIT"/lib/lib*.so.*; do
    local base=${lib%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
  done
  touch "$TOOLKIT/.done"
}

# The driver API symbols cudarc can reference, from its own bindings.
stub_libcuda() {
  local stub=$TOOLKIT/lib/stubs/libcuda.so
  if [ -f "$stub" ]; then return; fi
  step "link-time stub libcuda.so"
  cargo fetch --locked --quiet
  local version src
  version=$(awk '/^name = "cudarc"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$version" | head -n 1)
  mkdir -p "$TOOLKIT/lib/stubs"
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$src/src/driver/sys/mod.rs" \
    | sed 's/^pub unsafe fn //' | sort -u \
    | awk '{ printf "int %s(void) { return 100; }\n", $1 }' >"$TOOLKIT/lib/stubs/libcuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$TOOLKIT/lib/stubs/libcuda_stub.c"
}

cuda_env() {
  export PATH=$TOOLKIT/bin:$PATH
  export CUDA_HOME=$TOOLKIT CUDA_ROOT=$TOOLKIT CUDA_PATH=$TOOLKIT
  export CUDAFORGE_THREADS=$JOBS
  # $ORIGIN/lib: a bundle's libraries are found beside the binary
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath,\$ORIGIN/lib"
}

build() {
  step "cargo build --release --locked -p trader-cli --features cuda (sm_$CUDA_COMPUTE_CAP, $CARGO_TARGET_DIR)"
  "$TOOLKIT/bin/nvcc" --version | tail -n 2
  cargo build --release --locked -p trader-cli --features cuda -j "$JOBS"
}

# The toolkit's libraries; the stub libcuda.so.1 only where no driver has one.
run_env() {
  local dirs=$TOOLKIT/lib
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    ln -sf libcuda.so "$TOOLKIT/lib/stubs/libcuda.so.1"
    dirs=$dirs:$TOOLKIT/lib/stubs
    echo "no driver here: the stub libcuda.so.1 (every call: CUDA_ERROR_NO_DEVICE) stands in" >&2
  fi
  echo "$dirs"
}

# With trader-cli selected too, the features resolve as for the build above,
# so candle-kernels' nvcc output is reused (-p trader-ensemble alone resolves
# its host dependencies differently and compiles every kernel again, ~24 min).
# Runs trader-cli's `ensemble` tests (CPU, through the binary) as well.
per_device_tests() {
  step "cargo test --release --locked -p trader-cli -p trader-ensemble --features trader-cli/cuda --test ensemble"
  LD_LIBRARY_PATH=$(run_env) cargo test --release --locked -p trader-cli -p trader-ensemble \
    --features trader-cli/cuda -j "$JOBS" --test ensemble
}

# Every library the binary needs that a driver-only machine may lack.
bundle() {
  local bin=$1 out=$2
  step "bundle into $out"
  rm -rf "$out"
  mkdir -p "$out/lib"
  # stripped: 67 MB instead of 73 (33 MB of it are candle's sm_XX cubins for
  # quantized/MoE kernels, 11 MB its PTX); xz brings it to about 10 MB
  strip -o "$out/trader" "$bin"
  LD_LIBRARY_PATH=$TOOLKIT/lib:$TOOLKIT/lib/stubs ldd "$bin" | awk '/=> \// {print $1, $3}' \
    | while read -r name path; do
      case $name in
        libcuda.so*|libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libgcc_s.so*|ld-linux*) ;;
        *) cp -L "$path" "$out/lib/$name" ;;
      esac
    done
  scripts/gpu_check.sh --build-probe "$out" >/dev/null
  rm -f "$out/cuda_context_probe.c"
  du -sh "$out" "$out"/* "$out"/lib/* | sort -h
}

fetch_wheels
unpack_toolkit
stub_libcuda
cuda_env
build
BIN=$CARGO_TARGET_DIR/release/trader
step "built $BIN"
ls -l "$BIN"
echo "libraries at start (NEEDED: $(readelf -d "$BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')):"
LD_LIBRARY_PATH=$(run_env) ldd "$BIN"
LD_LIBRARY_PATH=$(run_env) "$BIN" --version
if [ "$TEST" = 1 ]; then
  per_device_tests
fi
if [ -n "$BUNDLE" ]; then
  bundle "$BIN" "$BUNDLE"
fi
echo "done in ${SECONDS}s (root $ROOT)"
