#!/usr/bin/env bash
# The WebRTC benchmark: end of the user's speech → first reply audio sample in the browser,
# p50/p95, next to the gRPC figure on the same daemon. One `vaak serve`; per language one
# browser call (Debian chromium + playwright-core, tests/web/call.cjs) whose fake microphone
# plays N eval clips with 25 s of silence after each (time for the reply); the page measures
# each turn itself (its mic tap's last voiced 20 ms block → its reply tap's first sound).
# Then `vaak bench latency` (gRPC, one session) on the same clips and daemon.
# Usage: scripts/bench-webrtc.sh [clips per language]   (needs scripts/setup.sh --test)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
clips="${1:-3}"
eval_dir="${VAAK_EVAL_DIR:-$(cd .. && pwd)/shared/eval}"
dir="$(mktemp -d)"
http_port=18091 grpc_port=50091
cat > "$dir/bench.toml" <<TOML
[server]
grpc_listen = "127.0.0.1:$grpc_port"
http_listen = "127.0.0.1:$http_port"
[telephony]
audiosocket_listen = ""
[llm]
max_tokens = 32
TOML
VAAK_LOG=info "$VAAK_BIN" --config "$dir/bench.toml" serve 2>"$dir/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 240); do grep -q 'vaak ready' "$dir/serve.log" && break; sleep 1; done
grep -q 'vaak ready' "$dir/serve.log" || { echo "vaak serve did not start:"; tail -20 "$dir/serve.log"; exit 1; }

# The same clips as `vaak bench latency --clips N` takes (round-robin over hi, te, en), in the
# order its single session plays them (grouped by language): one call, one session.
sox -n -r 48000 -c 1 -b 16 "$dir/lead.wav" trim 0 2
parts=("$dir/lead.wav") total=0
for lang in en hi te; do
  for f in $(tail -n +2 "$eval_dir/$lang/manifest.tsv" | head -n "$clips" | cut -f1); do
    sox "$eval_dir/$lang/$f" -r 48000 -c 1 -b 16 "$dir/$lang-$f" pad 0 25
    parts+=("$dir/$lang-$f")
    total=$((total + 1))
  done
done
sox "${parts[@]}" "$dir/mic.wav"
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }   # vaak's CPU time, in clock ticks
echo "webrtc: one browser call, $total clips …" >&2
before=$(cpu)
python3 - "$dir" "$total" "$http_port" <<'PY'
import json, os, resource, subprocess, sys, time
d, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = time.time()
out = subprocess.run(["node", "tests/web/call.cjs", "--url", f"http://127.0.0.1:{port}/",
                      "--wav", f"{d}/mic.wav", "--turns", str(n), "--timeout-s", str(n * 40 + 60)],
                     capture_output=True, text=True,
                     env={**os.environ, "NODE_PATH": os.environ["VAAK_WEB_DIR"] + "/node_modules"})
r = resource.getrusage(resource.RUSAGE_CHILDREN)
res = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {"error": out.stderr[-2000:]}
res["browser_cpu_s"] = r.ru_utime + r.ru_stime
res["wall_s"] = time.time() - t
open(f"{d}/webrtc.json", "w").write(json.dumps(res))
PY
webrtc_ticks=$(( $(cpu) - before ))
echo "grpc: the same clips …" >&2
manifests=()
for lang in hi te en; do manifests+=(--manifest "$eval_dir/$lang/manifest.tsv"); done
before=$(cpu)
start=$(date +%s)
"$VAAK_BIN" --config "$dir/bench.toml" bench latency "${manifests[@]}" --clips "$total" \
  --sessions 1 --addr "127.0.0.1:$grpc_port" --json > "$dir/grpc.json"
grpc_ticks=$(( $(cpu) - before ))
echo "$webrtc_ticks $grpc_ticks $(getconf CLK_TCK) $(( $(date +%s) - start ))" > "$dir/cpu.txt"
python3 - "$dir" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round((len(v) - 1) * p / 100)))] if v else float("nan")
r = json.loads((d / "webrtc.json").read_text())
page, server = r.get("page_latencies_ms", []), r.get("server_latencies_ms", [])
if not r.get("ok"):
    print("webrtc call:", r.get("error") or r.get("timed_out"))
print(f"webrtc turns: page {[round(x) for x in page]} ms, vaak {[round(x) for x in server]} ms")
w_ticks, g_ticks, hz, g_wall = map(int, (d / "cpu.txt").read_text().split())
g = json.loads((d / "grpc.json").read_text())[0]
e, v = g["end_of_speech_to_first_audio"], g["daemon_end_to_first_audio"]
print()
print("| path | p50 (ms) | p95 (ms) | turns |")
print("|---|---|---|---|")
print(f"| WebRTC: end of speech -> first audible reply sample, in the browser | {pct(page,50):.0f} | {pct(page,95):.0f} | {len(page)} |")
print(f"| WebRTC: VAD end -> first audio, inside vaak | {pct(server,50):.0f} | {pct(server,95):.0f} | {len(server)} |")
print(f"| gRPC: end of speech -> first reply byte, at the client | {e['p50_ms']:.0f} | {e['p95_ms']:.0f} | {e['count']} |")
print(f"| gRPC: VAD end -> first audio, inside vaak | {v['p50_ms']:.0f} | {v['p95_ms']:.0f} | {v['count']} |")
print()
print(f"CPU: vaak {w_ticks / hz:.0f} s during the WebRTC call ({r.get('wall_s', 0):.0f} s), "
      f"{g_ticks / hz:.0f} s during the gRPC run ({g_wall} s); chromium + node {r.get('browser_cpu_s', 0):.0f} s")
PY
