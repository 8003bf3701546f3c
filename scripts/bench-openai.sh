#!/usr/bin/env bash
# The OpenAI-compatible endpoints' benchmark, driven by the official `openai` client: time to
# the first audio byte of `POST /v1/audio/speech` (p50/p95, Hindi and English sentences, each
# said N times), and recognition through `POST /v1/audio/transcriptions` (real-time factor)
# next to `vaak transcribe` on the same clips (the endpoint's overhead as a ratio).
# Usage: scripts/bench-openai.sh [repeats]   (needs scripts/setup.sh; the venv of py-env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
repeats="${1:-10}"
eval_dir="${VAAK_EVAL_DIR:-$(cd .. && pwd)/shared/eval}"
eval "$(scripts/py-env.sh)"
dir="$(mktemp -d)"
http_port=18093 grpc_port=50093
cat > "$dir/bench.toml" <<TOML
[server]
grpc_listen = "127.0.0.1:$grpc_port"
http_listen = "127.0.0.1:$http_port"
[telephony]
audiosocket_listen = ""
TOML
VAAK_LOG=info "$VAAK_BIN" --config "$dir/bench.toml" serve 2>"$dir/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 240); do grep -q 'vaak ready' "$dir/serve.log" && break; sleep 1; done
grep -q 'vaak ready' "$dir/serve.log" || { echo "vaak serve did not start:"; tail -20 "$dir/serve.log"; exit 1; }

clips=()
for lang in en hi te; do
  for f in $(tail -n +2 "$eval_dir/$lang/manifest.tsv" | head -n 3 | cut -f1); do
    clips+=("$eval_dir/$lang/$f")
  done
done
# `vaak transcribe` on each clip: the same recogniser without HTTP (model load not counted).
cli_compute=0 audio=0
for c in "${clips[@]}"; do
  read -r a e < <("$VAAK_BIN" --config "$dir/bench.toml" transcribe "$c" 2>/dev/null \
    | "$VAAK_PY" -c 'import json,sys; j=json.load(sys.stdin); print(j["audio_s"], j["elapsed_s"])')
  audio=$("$VAAK_PY" -c "print($audio + $a)")
  cli_compute=$("$VAAK_PY" -c "print($cli_compute + $e)")
done
"$VAAK_PY" - "$http_port" "$repeats" "$audio" "$cli_compute" "${clips[@]}" <<'PY'
import statistics, sys, time
import openai
port, n, audio, cli = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
clips = sys.argv[5:]
c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)
texts = {
    "en": "The train to Chennai leaves at ten. Please be on time, and carry your ticket.",
    "hi": "नमस्ते। आज मौसम बहुत अच्छा है, बाहर घूमने चलिए।",
}
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
for lang, text in texts.items():
    first, whole = [], []
    for _ in range(n):
        t0 = time.monotonic()
        got = None
        with c.audio.speech.with_streaming_response.create(
                model="tts-1", voice="alloy", input=text, response_format="pcm") as r:
            for chunk in r.iter_bytes():
                if got is None and chunk:
                    got = time.monotonic() - t0
        first.append(got * 1000)
        whole.append((time.monotonic() - t0) * 1000)
    print(f"speech {lang}: first byte p50 {pct(first, 50):.0f} ms, p95 {pct(first, 95):.0f} ms; "
          f"whole reply p50 {pct(whole, 50):.0f} ms ({n} requests)")
t0 = time.monotonic()
for path in clips:
    with open(path, "rb") as f:
        c.audio.transcriptions.create(model="whisper-1", file=f)
wall = time.monotonic() - t0
print(f"transcriptions: {len(clips)} clips, {audio:.1f} s of audio in {wall:.1f} s through the "
      f"endpoint (RTF {wall / audio:.3f}); vaak transcribe computed {cli:.1f} s (RTF "
      f"{cli / audio:.3f}); endpoint / CLI = {wall / cli:.2f}")
PY
