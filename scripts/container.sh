#!/usr/bin/env bash
# The vaak container image, from Debian packages only (no registry is reachable here):
#
#   scripts/container.sh build     # prints the image name on its last line
#
# 1. A Debian 12 base made by mmdebstrap from the machine's apt sources (runtime libraries of
#    vaak and its worker, tini, curl, ca-certificates, a system user `vaak`), cached under
#    $XDG_CACHE_HOME/vaak/container by a hash of its recipe and imported as
#    localhost/vaak-base:bookworm.
# 2. The image localhost/vaak:dev from packaging/container/Containerfile: the workspace's
#    binaries (debug info stripped) and the in-container config. No RUN step, so building
#    needs no container runtime.
#
# Running it here (a cgroup v1 host without CAP_SYS_RESOURCE) needs podman's runc runtime and
# resource limits at or below the host's: see CONTAINER_RUN_ARGS in tests/it/container.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

IMAGE=localhost/vaak:dev
BASE=localhost/vaak-base:bookworm
PACKAGES=ca-certificates,libasound2,libespeak-ng1,libgomp1,libstdc++6,curl,tini
USER_HOOK='chroot "$1" useradd --system --uid 999 --user-group --home-dir /var/lib/vaak --create-home --shell /usr/sbin/nologin vaak && mkdir -p "$1/models" "$1/etc/vaak" && chown 999:999 "$1/models"'
DIR="$VAAK_CACHE/container"

need=()
for tool in podman mmdebstrap runc; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "container.sh: installing ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    podman mmdebstrap runc uidmap slirp4netns >&2
fi

[ "${1:-}" = build ] || { echo "usage: scripts/container.sh build" >&2; exit 2; }
mkdir -p "$DIR"
recipe="$(printf 'bookworm minbase %s %s' "$PACKAGES" "$USER_HOOK" | sha256sum | cut -c1-16)"
tar="$DIR/base-$recipe.tar"
if [ ! -f "$tar" ]; then
  echo "container.sh: building the Debian base ($tar)" >&2
  mmdebstrap --quiet --variant=minbase --include="$PACKAGES" --customize-hook="$USER_HOOK" \
    bookworm "$DIR/partial-$recipe.tar" >&2
  mv "$DIR/partial-$recipe.tar" "$tar"
fi
if [ "$(podman image inspect --format '{{index .Labels "vaak.recipe"}}' "$BASE" 2>/dev/null || true)" != "$recipe" ]; then
  podman import --change "LABEL vaak.recipe=$recipe" "$tar" "$BASE" >&2
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
for bin in vaak vaak-llm; do
  objcopy --strip-debug "$CARGO_TARGET_DIR/debug/$bin" "$ctx/$bin"
done
cp packaging/container/Containerfile packaging/container/vaak.toml "$ctx/"
podman build --quiet --format docker -f "$ctx/Containerfile" -t "$IMAGE" "$ctx" >&2
echo "container.sh: $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes" >&2
echo "$IMAGE"
