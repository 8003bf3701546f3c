# Shared by scripts/py-env.sh and scripts/py-frameworks-env.sh (source it): the base
# interpreter, the lock that serialises builders, and a fresh virtualenv with pinned packages
# from PyPI (python3 and python3-venv from apt if missing). Defines functions only; each takes
# the caller's `log` for progress on stderr.

# Base interpreter: VAAK_BASE_PYTHON, else Debian's python3, else python3 on PATH (may be empty).
venv_base_python() {
  if [ -n "${VAAK_BASE_PYTHON:-}" ]; then
    echo "$VAAK_BASE_PYTHON"
  elif [ -x /usr/bin/python3 ]; then
    echo /usr/bin/python3
  else
    command -v python3 || true
  fi
}

# Holds an exclusive lock on file $1 (fd 9) for the rest of the script, waiting up to 15 min.
venv_lock() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock -w 900 9 || { log "timed out waiting for $1"; return 1; }
}

venv_apt_install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "installing $* with apt-get"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Makes sure BASE_PY names an interpreter that can create a venv (`python3 -m venv` needs
# ensurepip, which Debian splits into python3-venv).
venv_ensure_base() {
  if [ -z "$BASE_PY" ]; then
    venv_apt_install python3 python3-venv
    BASE_PY=/usr/bin/python3
  fi
  if ! "$BASE_PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$BASE_PY" = /usr/bin/python3 ]; then
      local ver
      ver="$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
      venv_apt_install python3-venv "python$ver-venv"
    else
      log "$BASE_PY has no ensurepip/venv; set VAAK_BASE_PYTHON to an interpreter that has"
      return 1
    fi
  fi
}

# A new venv at $1 (whatever was there is removed) with the pinned packages $2…; after it,
# VENV_PIP holds the venv's pip command line for further installs.
venv_create() {
  local venv="$1"
  shift
  log "creating $venv with $BASE_PY"
  rm -rf "$venv"
  "$BASE_PY" -m venv "$venv" >&2
  VENV_PIP=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q --timeout 60 --retries 3)
  log "installing $*"
  "${VENV_PIP[@]}" install "$@" >&2
}
