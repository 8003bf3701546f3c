#!/usr/bin/env bash
# A private PulseAudio server with a virtual microphone (a pipe source: write s16le mono into
# $PA_MIC_FIFO in real time, and keep writing silence: without a writer it delivers nothing)
# and a virtual speaker (a null sink: record `speaker.monitor` with parec). For trying
# `vaak kiosk` without hardware and for scripts/bench-kiosk.sh; the kiosk test starts its own.
# Usage:  scripts/virtual-audio.sh start DIR [RATE]   -> prints "export ..." lines (eval them)
#         scripts/virtual-audio.sh stop DIR
# Needs (scripts/setup.sh --test installs them): pulseaudio pulseaudio-utils libasound2-plugins
pa_env() {
  local D=$1
  echo "export HOME=$D XDG_RUNTIME_DIR=$D PULSE_RUNTIME_PATH=$D/run PULSE_STATE_PATH=$D/state PULSE_CONFIG_PATH=$D/config PULSE_SERVER=unix:$D/native PA_MIC_FIFO=$D/mic.fifo"
}
pa_start() {
  local D=$(realpath -m "$1") RATE=${2:-16000}
  [ -f "$D/pa.pid" ] && pa_stop "$D"
  mkdir -p "$D/run" "$D/state" "$D/config"
  rm -f "$D/mic.fifo" "$D/native"          # module-pipe-source fails with EEXIST on a pre-existing fifo
  cat > "$D/init.pa" <<PA
.fail
load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0 socket=$D/native
load-module module-null-sink sink_name=speaker rate=$RATE channels=1 format=s16le
load-module module-pipe-source source_name=mic file=$D/mic.fifo format=s16le rate=$RATE channels=1
set-default-sink speaker
set-default-source mic
PA
  # fallback in case the alsa conf hook does not route "default" to pulse
  printf 'pcm.!default { type pulse }\nctl.!default { type pulse }\n' > "$D/.asoundrc"
  ( eval "$(pa_env "$D")"
    exec setsid pulseaudio -n -F "$D/init.pa" --daemonize=no --exit-idle-time=-1 --disallow-exit \
      --use-pid-file=no --disable-shm=yes --log-target=stderr --log-level=warning ) >"$D/pa.log" 2>&1 &
  echo $! > "$D/pa.pid"
  local i
  for i in $(seq 1 50); do
    [ -S "$D/native" ] && ( eval "$(pa_env "$D")"; pactl info >/dev/null 2>&1 ) && { pa_env "$D"; return 0; }
    kill -0 "$(cat "$D/pa.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "pulseaudio failed to start:" >&2; cat "$D/pa.log" >&2; pa_stop "$D"; return 1
}
pa_stop() {
  local D=$(realpath -m "$1") P
  [ -f "$D/pa.pid" ] || return 0
  P=$(cat "$D/pa.pid")
  kill -TERM "$P" 2>/dev/null
  for i in $(seq 1 30); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$P" 2>/dev/null
  rm -rf "$D/run" "$D/state" "$D/config" "$D/.config" "$D/native" "$D/mic.fifo" "$D/pa.pid" "$D/init.pa" "$D/.asoundrc"
}
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "$1" in start) pa_start "$2" "$3";; stop) pa_stop "$2";; env) pa_env "$(realpath -m "$2")";; *) echo "usage: $0 start|stop|env DIR [RATE]" >&2; exit 2;; esac
fi
