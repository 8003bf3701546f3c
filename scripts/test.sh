#!/usr/bin/env bash
# README command 2: the whole test suite, doing its own set-up (packages, build, models).
# Style gates first (fmt, clippy -D warnings), then every test on the real models, then a
# short fuzzing run of the telephony frame parsers and the WAV reader.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
scripts/setup.sh --test
source scripts/env.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

export VAAK_EVAL_DIR="${VAAK_EVAL_DIR:-$(cd .. && pwd)/shared/eval}"
export VAAK_TEST_WHISPER_GGML="$VAAK_MODELS_DIR/whisper-base/ggml-base-q8_0.bin"
export VAAK_TEST_ORT_DYLIB="$VAAK_MODELS_DIR/onnxruntime/libonnxruntime.so.1.32.0"
export VAAK_TEST_KOKORO_DIR="$VAAK_MODELS_DIR/kokoro-model"
export VAAK_TEST_KOKORO_VOCAB="$VAAK_MODELS_DIR/kokoro-vocab/vocab.json"
export VAAK_TEST_KOKORO_VOICES="$VAAK_MODELS_DIR/kokoro-voices/voices"
export VAAK_TEST_PIPER_MODEL="$VAAK_MODELS_DIR/piper-en-joe/en_US-joe-medium.onnx"
export VAAK_TEST_TTS_OUT="$(mktemp -d)"
# The gRPC tests drive `vaak serve` with the Python client and grpcurl from this venv.
eval "$(scripts/py-env.sh)"
export VAAK_PY VAAK_GRPCURL
# Pipecat and LiveKit Agents (their own venv: they pin another `openai`) for tests/it/frameworks.rs.
eval "$(scripts/py-frameworks-env.sh)"
export VAAK_FW_PY
export VAAK_TEST_LLM_GGUF="$VAAK_MODELS_DIR/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$VAAK_TEST_LLM_GGUF" ]; then
  "$VAAK_BIN" models fetch --set small
fi
# The phone-call test runs four calls at once on the 0.5B (`fast`) set; idempotent.
"$VAAK_BIN" models fetch --set fast
VAAK_TEST_LLAMA_SERVER="$(scripts/llama-server.sh | tail -n 1)"
export VAAK_TEST_LLAMA_SERVER
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --test-threads 2 --no-fail-fast
else
  cargo test --workspace --locked -- --test-threads 2
fi
# A short run of every fuzz target (a crash fails the suite).
VAAK_FUZZ_SECS="${VAAK_FUZZ_SECS:-20}" scripts/fuzz.sh
echo "test.sh: all green in $(( $(date +%s) - started )) s"
