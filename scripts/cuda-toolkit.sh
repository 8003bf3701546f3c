#!/usr/bin/env bash
# Assembles a CUDA toolkit from NVIDIA's PyPI wheels (no NVIDIA download site is needed), for
# building vaak with `--features cuda` (scripts/gpu-check.sh). Idempotent: the toolkit lives in
# ${XDG_CACHE_HOME:-~/.cache}/vaak/cuda/<version> and is re-used while its stamp matches.
#
# The wheels (nvcc, cicc/NVVM, the C runtime headers, cudart, cuBLAS, CCCL) each unpack under
# `nvidia/cu13/`; merged, they form the usual toolkit layout (bin/, include/, lib/, nvvm/). CMake
# and the linker want unversioned `.so` names, so those links are added.
#
# The driver library (libcuda.so.1) comes with the NVIDIA driver, never with the toolkit. On a
# machine without one, `--link-stub` adds an empty `lib/stubs/libcuda.so` so that a compile-only
# check can link (gpu-check.sh --compile-only); a binary linked that way cannot run CUDA work.
#
# Prints `export` lines for the build (CUDA_PATH, CUDACXX, PATH, LIBRARY_PATH, LD_LIBRARY_PATH) on
# stdout; progress goes to stderr.
set -euo pipefail

VERSION=13.5.37
WHEELS=(
  "nvidia-cuda-nvcc==$VERSION"
  "nvidia-nvvm==$VERSION"
  "nvidia-cuda-crt==$VERSION"
  "nvidia-cuda-runtime==$VERSION"
  "nvidia-cuda-cccl==13.3.5.0.6"
  "nvidia-cublas==13.10.0.20"
)

stub=0
[ "${1:-}" = "--link-stub" ] && stub=1

log() { echo "cuda-toolkit.sh: $*" >&2; }

root="${XDG_CACHE_HOME:-$HOME/.cache}/vaak/cuda/$VERSION"
stamp="$root/stamp"
want="${WHEELS[*]}"

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  command -v unzip >/dev/null || { log "installing unzip"; apt-get install -y -qq unzip >&2; }
  PY="$(command -v python3)"
  rm -rf "$root"
  mkdir -p "$root/wheels"
  log "downloading ${#WHEELS[@]} wheels (cuBLAS alone is about 450 MB)"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2010_x86_64 --platform manylinux1_x86_64 \
    --python-version 3.11 -d "$root/wheels" "${WHEELS[@]}" >&2
  tmp="$(mktemp -d)"
  for w in "$root"/wheels/*.whl; do
    unzip -q -o "$w" 'nvidia/*' -d "$tmp"
  done
  cp -a "$tmp"/nvidia/cu13/. "$root/"
  rm -rf "$tmp" "$root/wheels"
  chmod +x "$root"/bin/* "$root"/nvvm/bin/* 2>/dev/null || true
  (
    cd "$root/lib"
    for so in lib*.so.*; do
      base="${so%%.so.*}.so"
      [ -e "$base" ] || ln -s "$so" "$base"
    done
  )
  # CUDA 13 no longer ships culibos (a helper of the static cudart); whisper-rs-sys still asks
  # the linker for it, next to the dynamic cudart that needs nothing from it: an empty archive.
  [ -e "$root/lib/libculibos.a" ] || ar rcs "$root/lib/libculibos.a"
  # CMake's FindCUDAToolkit also looks in lib64.
  [ -e "$root/lib64" ] || ln -s lib "$root/lib64"
  echo "$want" >"$stamp"
  log "toolkit ready in $root"
fi

if [ "$stub" = 1 ] && [ ! -e "$root/lib/stubs/libcuda.so" ]; then
  mkdir -p "$root/lib/stubs"
  echo "" | cc -x c -shared -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" -
fi

cat <<EOF
export CUDA_PATH="$root"
export CUDA_HOME="$root"
export CUDACXX="$root/bin/nvcc"
export PATH="$root/bin:\$PATH"
export LIBRARY_PATH="$root/lib:$root/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$root/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export RUSTFLAGS="\${RUSTFLAGS:-} -L native=$root/lib -L native=$root/lib/stubs"
EOF
