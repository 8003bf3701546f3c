#!/usr/bin/env bash
# Python side of vaak's voice-framework tests (tests/it/frameworks.rs) and of the examples
# examples/pipecat_vaak.py and examples/livekit_vaak.py: a virtualenv with pinned Pipecat
# (`pipecat-ai[openai]`) and LiveKit Agents (`livekit-agents` + `livekit-plugins-openai`).
# It is separate from scripts/py-env.sh's venv because both frameworks pin their own `openai`
# client (and protobuf), which differ from the one vaak's OpenAI-compatibility test pins.
#
#   eval "$(scripts/py-frameworks-env.sh)"; export VAAK_FW_PY   # sets VAAK_FW_PY
#
# Idempotent: the venv lives at ${XDG_CACHE_HOME:-$HOME/.cache}/vaak/venv-frameworks (outside
# the clone, so fresh CI clones re-use it) and a stamp of the pins makes a warm run a few
# milliseconds. Everything comes from PyPI (and python3-venv from apt if missing); nothing is
# downloaded at run time: the Silero VAD models the two frameworks use ship inside their wheels
# (pipecat/audio/vad/data/silero_vad.onnx, livekit-local-inference). No torch, no GPU extras;
# the venv is about 750 MB (onnxruntime, numba/llvmlite for Pipecat's resampler, PyAV).
#
# stdout: exactly one line, VAAK_FW_PY=...; progress goes to stderr.
set -euo pipefail

VAAK_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vaak"
VENV="$VAAK_CACHE/venv-frameworks"
STAMP="$VENV/.vaak-py-frameworks-env.stamp"
# The frameworks, their OpenAI plugins, and the clients under them whose behaviour the tests
# depend on (the OpenAI client both frameworks call vaak with; LiveKit's rtc SDK for frames).
PINS=(
  "pipecat-ai[openai]==1.14.0"
  livekit-agents==1.8.9
  livekit-plugins-openai==1.8.9
  livekit==1.1.21
  openai==3.63.0
  numpy==2.4.6
)

source "$(dirname "$0")/lib/venv.sh"
BASE_PY="$(venv_base_python)"

want_stamp() {
  printf 'v1 base=%s\n' "$BASE_PY"
  printf '%s\n' "${PINS[@]}"
}

emit() { echo "VAAK_FW_PY=$VENV/bin/python"; }

warm() {
  [ -f "$STAMP" ] && [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ]
}

# Fast path: no lock, no Python start-up.
if [ -n "$BASE_PY" ] && warm; then emit; exit 0; fi

log() { echo "py-frameworks-env: $*" >&2; }

venv_lock "$VAAK_CACHE/venv-frameworks.lock"
# Someone else may have finished it while we waited.
if [ -n "$BASE_PY" ] && warm; then emit; exit 0; fi

venv_ensure_base

t0=$(date +%s)
venv_create "$VENV" "${PINS[@]}"
# Both frameworks import, with the pieces the tests use (no network: the VAD models are local).
"$VENV/bin/python" - >&2 <<'EOF'
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from livekit.agents import AgentSession, inference
from livekit.plugins import openai
inference.VAD(model="silero")
print("pipecat and livekit-agents import")
EOF

want_stamp >"$STAMP"
log "ready in $(( $(date +%s) - t0 ))s ($(du -sh "$VENV" | cut -f1))"
emit
