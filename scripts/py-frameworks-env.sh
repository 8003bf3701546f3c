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

# Base interpreter: VAAK_BASE_PYTHON, else Debian's python3, else python3 on PATH.
BASE_PY="${VAAK_BASE_PYTHON:-}"
if [ -z "$BASE_PY" ]; then
  if [ -x /usr/bin/python3 ]; then BASE_PY=/usr/bin/python3; else BASE_PY="$(command -v python3 || true)"; fi
fi

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

mkdir -p "$VAAK_CACHE"
exec 9>"$VAAK_CACHE/venv-frameworks.lock"
if ! flock -w 900 9; then log "timed out waiting for $VAAK_CACHE/venv-frameworks.lock"; exit 1; fi
# Someone else may have finished it while we waited.
if [ -n "$BASE_PY" ] && warm; then emit; exit 0; fi

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {
  log "installing $* with apt-get"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >&2
}

if [ -z "$BASE_PY" ]; then
  apt_install python3 python3-venv
  BASE_PY=/usr/bin/python3
fi
# `python3 -m venv` needs ensurepip, which Debian splits into python3-venv.
if ! "$BASE_PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$BASE_PY" = /usr/bin/python3 ]; then
    ver="$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    apt_install python3-venv "python$ver-venv"
  else
    log "$BASE_PY has no ensurepip/venv; set VAAK_BASE_PYTHON to an interpreter that has"
    exit 1
  fi
fi

t0=$(date +%s)
log "creating $VENV with $BASE_PY"
rm -rf "$VENV"
"$BASE_PY" -m venv "$VENV" >&2
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q --timeout 60 --retries 3)
log "installing ${PINS[*]}"
"${PIP[@]}" install "${PINS[@]}" >&2
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
