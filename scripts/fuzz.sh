#!/usr/bin/env bash
# Runs every fuzz target (fuzz/: the telephony frame parsers, the WAV reader, typed text and
# redaction, speech normalisation, the config file, the WHIP offer check, gRPC client messages)
# for a short time each: libFuzzer via cargo fuzz, on the machine's stable toolchain
# (RUSTC_BOOTSTRAP=1 admits the -Z flags cargo fuzz passes). A crash fails the script and
# leaves the input under fuzz/artifacts/.
#
#   scripts/fuzz.sh              # 20 s per target (CI)
#   VAAK_FUZZ_SECS=600 scripts/fuzz.sh twilio_message
#
# Idempotent: cargo-fuzz is installed once (crates.io), the build and the growing corpora live
# under ${XDG_CACHE_HOME:-$HOME/.cache}/vaak, outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

CARGO_FUZZ_VERSION=0.13.2
SECS="${VAAK_FUZZ_SECS:-20}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(twilio_message exotel_message plivo_message audiosocket_frames wav_file speech_text typed_text config_file whip_offer client_messages)

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz >&2
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$VAAK_CACHE/fuzz-target"
for t in "${TARGETS[@]}"; do
  corpus="$VAAK_CACHE/fuzz-corpus/$t"
  mkdir -p "$corpus"
  echo "fuzz: $t for ${SECS}s" >&2
  # grep hides libFuzzer's chatter; the exit status that matters is cargo fuzz's, read from
  # PIPESTATUS with errexit off (a `|| true` after the pipeline would reset it to 0).
  set +e
  cargo fuzz run "$t" "$corpus" "fuzz/seeds/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==|SUMMARY|thread .* panicked|Done )'
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -eq 0 ] || { echo "fuzz: $t FAILED (see fuzz/artifacts/$t)" >&2; exit 1; }
done
echo "fuzz: all targets clean" >&2
