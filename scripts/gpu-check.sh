#!/usr/bin/env bash
# Builds vaak for NVIDIA GPUs and measures it (issue 18, part 3). On a machine with an NVIDIA
# driver: builds `vaak` and `vaak-llm` with `--features cuda` (whisper.cpp and llama.cpp on
# CUDA), puts ONNX Runtime's CUDA provider under Kokoro and Piper (the `onnxruntime-gpu` wheel),
# shows where each model runs (`vaak config check`), then runs `vaak bench latency` on the GPU
# build and, for the ratio, on the CPU (`compute.device = "cpu"`, same binaries, same machine).
#
#   scripts/gpu-check.sh                 # build + config check + bench (needs the GPU)
#   scripts/gpu-check.sh --compile-only  # build only: a machine without a GPU or driver
#
# Everything comes from the registries: the CUDA toolkit from NVIDIA's PyPI wheels
# (scripts/cuda-toolkit.sh), onnxruntime-gpu with its CUDA and cuDNN libraries from PyPI into a
# venv. Build output goes to its own target directory (…/vaak/target-cuda), so the CPU build and
# its tests are untouched. CUDAARCHS picks the GPU architectures compiled (default: `native`, the
# GPU here; `--compile-only` defaults to 90, Hopper). Results go to stdout and to
# $VAAK_CACHE/gpu-check/<date>/.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
[ "${1:-}" = "--compile-only" ] && mode=compile
ORT_GPU_VERSION=1.31.1

scripts/setup.sh
source scripts/env.sh
log() { echo "gpu-check.sh: $*" >&2; }

if [ "$mode" = full ] && ! ldconfig -p | grep -q 'libcuda\.so\.1'; then
  log "no NVIDIA driver here (libcuda.so.1 is not in the loader's cache): use --compile-only"
  exit 2
fi

if [ "$mode" = compile ]; then
  eval "$(scripts/cuda-toolkit.sh --link-stub)"
  export CUDAARCHS="${CUDAARCHS:-90}"
  # The link stub has no symbols: a compile-only binary is linked but cannot run CUDA work.
  export RUSTFLAGS="$RUSTFLAGS -C link-arg=-Wl,--unresolved-symbols=ignore-in-object-files"
else
  eval "$(scripts/cuda-toolkit.sh)"
  export CUDAARCHS="${CUDAARCHS:-native}"
  # The linker wants `libcuda.so`; the driver installs `libcuda.so.1` (its soname, recorded).
  driver_dir="$VAAK_CACHE/cuda-driver"
  mkdir -p "$driver_dir"
  ln -sf "$(ldconfig -p | awk '/libcuda\.so\.1 / {print $NF; exit}')" "$driver_dir/libcuda.so"
  export LIBRARY_PATH="$driver_dir:$LIBRARY_PATH"
  export RUSTFLAGS="$RUSTFLAGS -L native=$driver_dir"
fi
export CARGO_TARGET_DIR="$VAAK_CACHE/target-cuda"
# llama.cpp as shared libraries: its static CUDA link wants cuBLAS's static archives, which the
# PyPI wheels do not ship. They land beside the binaries, found through $ORIGIN.
export LLAMA_BUILD_SHARED_LIBS=1
export RUSTFLAGS="$RUSTFLAGS -C link-arg=-Wl,-rpath,\$ORIGIN"
started=$(date +%s)
log "building with --features cuda into $CARGO_TARGET_DIR (CUDAARCHS=$CUDAARCHS; a first build compiles ggml's CUDA kernels twice, for whisper.cpp and llama.cpp: tens of minutes)"
nice cargo build --workspace --locked --features vaak/cuda,vaak-llm/cuda
log "built in $(( $(date +%s) - started )) s"
bin="$CARGO_TARGET_DIR/debug/vaak"
export VAAK_LLM_BIN="$CARGO_TARGET_DIR/debug/vaak-llm"
# llama-cpp-sys-2 hard-links the libraries' plain-name symlinks beside the binaries, where they
# point nowhere; the binaries ask for the sonames (libllama.so.0 …): copy those from its build.
lib_dir="$(ls -td "$CARGO_TARGET_DIR"/debug/build/llama-cpp-sys-2-*/out/lib | head -n 1)"
cp -fL "$lib_dir"/lib*.so.0 "$CARGO_TARGET_DIR/debug/"
# They find each other there (libggml.so.0 loads libggml-cuda.so.0) through the loader's path.
export LD_LIBRARY_PATH="$CARGO_TARGET_DIR/debug:$LD_LIBRARY_PATH"
if [ "$mode" = compile ]; then
  # Everything but the NVIDIA driver must resolve.
  missing="$(ldd "$VAAK_LLM_BIN" "$bin" | awk '/not found/ {print $1}' | grep -v '^libcuda\.so' | sort -u || true)"
  [ -z "$missing" ] || { log "unresolved libraries: $missing"; exit 1; }
  log "compile-only build done (the binaries need an NVIDIA driver to run)"
  exit 0
fi
"$VAAK_LLM_BIN" --probe --gpu 0

# ONNX Runtime with its CUDA provider; the extras bring the CUDA and cuDNN libraries it loads.
venv="$VAAK_CACHE/ort-gpu-$ORT_GPU_VERSION"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "onnxruntime-gpu[cuda,cudnn]==$ORT_GPU_VERSION" >&2
fi
ort_lib="$(find "$venv" -path '*onnxruntime/capi/libonnxruntime.so*' -type f | head -n 1)"
[ -n "$ort_lib" ] || { log "onnxruntime-gpu installed no libonnxruntime.so"; exit 1; }
LD_LIBRARY_PATH="$(find "$venv" -path '*/nvidia/*/lib' -type d | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH

out="$VAAK_CACHE/gpu-check/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
cat >"$out/gpu.toml" <<EOF
[compute]
device = "cuda"
onnxruntime_lib = "$ort_lib"
EOF
printf '[compute]\ndevice = "cpu"\n' >"$out/cpu.toml"

"$bin" models fetch
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt" || true
"$bin" config check "$out/gpu.toml" | tee "$out/config-check.txt"

eval_dir="${VAAK_EVAL_DIR:-$(cd .. && pwd)/shared/eval}"
manifests=()
for lang in hi te en; do
  [ -f "$eval_dir/$lang/manifest.tsv" ] && manifests+=(--manifest "$eval_dir/$lang/manifest.tsv")
done
[ ${#manifests[@]} -gt 0 ] || { log "no eval manifests under $eval_dir"; exit 1; }
for device in gpu cpu; do
  log "bench latency on the $device"
  "$bin" --config "$out/$device.toml" bench latency "${manifests[@]}" --clips 9 --sessions 1,2,4 \
    | tee "$out/bench-$device.txt"
done
log "results in $out"
