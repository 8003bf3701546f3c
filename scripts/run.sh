#!/usr/bin/env bash
# README command 1: install what is missing, fetch models, build, start the daemon on the
# embedded defaults. Extra arguments go to `vaak` (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
exec "$VAAK_BIN" "$@" serve
