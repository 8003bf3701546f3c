#!/usr/bin/env bash
# The kiosk benchmark on virtual audio devices (scripts/virtual-audio.sh): end of the user's
# speech → first reply sample taken by the speaker, p50/p95 over eval clips played into the
# microphone in real time, and the kiosk's CPU use while it listens to silence (all of its
# processes: vaak and the LLM worker). Usage: scripts/bench-kiosk.sh [clips per language]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
clips="${1:-3}"
eval_dir="${VAAK_EVAL_DIR:-$(cd .. && pwd)/shared/eval}"
dir="$(mktemp -d)"
bin="$VAAK_BIN" models="$VAAK_MODELS_DIR"   # before the sound server's env changes HOME
trap 'scripts/virtual-audio.sh stop "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
eval "$(scripts/virtual-audio.sh start "$dir" 16000)"
VAAK_MODELS_DIR="$models" python3 scripts/bench_kiosk.py --bin "$bin" --dir "$dir" \
  --eval "$eval_dir" --clips "$clips"
