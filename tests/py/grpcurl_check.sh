#!/usr/bin/env bash
# Checks a running `vaak serve` with grpcurl, as an outside user would:
#   tests/py/grpcurl_check.sh HOST:PORT
# - `list` over server reflection shows vaak.v1.Vaak, grpc.health.v1.Health and
#   grpc.reflection.v1(alpha).ServerReflection;
# - `describe vaak.v1.Vaak` shows the six RPCs;
# - grpc.health.v1.Health/Check answers SERVING for "" and "vaak.v1.Vaak".
# grpcurl is $VAAK_GRPCURL, else the one scripts/py-env.sh installs. An API key in $VAAK_API_KEY
# is sent as `authorization: Bearer ...`. Every call is bounded (-max-time plus timeout).
set -euo pipefail
ADDR="${1:?usage: $0 HOST:PORT}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"

if [ -z "${VAAK_GRPCURL:-}" ]; then
  eval "$("$ROOT/scripts/py-env.sh")"
fi
[ -x "$VAAK_GRPCURL" ] || { echo "grpcurl_check: no grpcurl at $VAAK_GRPCURL" >&2; exit 1; }

HDR=()
[ -n "${VAAK_API_KEY:-}" ] && HDR=(-H "authorization: Bearer $VAAK_API_KEY")
gc() { timeout 30 "$VAAK_GRPCURL" -plaintext -connect-timeout 10 -max-time 20 "${HDR[@]}" "$@"; }
fail() { echo "grpcurl_check: FAIL: $*" >&2; exit 1; }

if ! services="$(gc "$ADDR" list 2>&1)"; then
  hint=""
  case "$services" in
    *"does not support the reflection API"*)
      hint=" (grpcurl $("$VAAK_GRPCURL" -version 2>&1 | awk '{print $2}') speaks only grpc.reflection.v1alpha: the server must register the v1alpha reflection service too)";;
  esac
  fail "list via reflection failed: $services$hint"
fi
echo "$services" | sed 's/^/  list: /'
for s in vaak.v1.Vaak grpc.health.v1.Health; do
  grep -qx "$s" <<<"$services" || fail "service $s not listed"
done
grep -qxE 'grpc\.reflection\.v1(alpha)?\.ServerReflection' <<<"$services" \
  || fail "no grpc.reflection.v1 / v1alpha ServerReflection listed"

desc="$(gc "$ADDR" describe vaak.v1.Vaak 2>&1)" || fail "describe vaak.v1.Vaak: $desc"
for rpc in Converse Transcribe Synthesize ListVoices ListLanguages DeleteSession; do
  grep -q "rpc $rpc (" <<<"$desc" || fail "describe vaak.v1.Vaak lacks rpc $rpc: $desc"
done
echo "  describe: vaak.v1.Vaak has Converse Transcribe Synthesize ListVoices ListLanguages DeleteSession"
# The message types must resolve too (reflection serves the whole file).
gc "$ADDR" describe vaak.v1.ServerEvent >/dev/null 2>&1 || fail "describe vaak.v1.ServerEvent failed"

for svc in "" vaak.v1.Vaak; do
  out="$(gc -d "{\"service\": \"$svc\"}" "$ADDR" grpc.health.v1.Health/Check 2>&1)" \
    || fail "Health/Check service='$svc': $out"
  grep -q '"SERVING"' <<<"$out" || fail "Health/Check service='$svc' is not SERVING: $out"
  echo "  health '$svc': SERVING"
done
echo "grpcurl_check: OK ($ADDR)"
