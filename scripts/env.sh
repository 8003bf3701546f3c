# Shared environment for vaak's scripts (sourced, not run). Build output and models live
# outside the clone so fresh clones (CI) reuse them.
VAAK_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/vaak"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$VAAK_CACHE/target}"
export VAAK_MODELS_DIR="${VAAK_MODELS_DIR:-$VAAK_CACHE/models}"
# npm packages of the browser tests (playwright-core).
export VAAK_WEB_DIR="${VAAK_WEB_DIR:-$VAAK_CACHE/web}"
export VAAK_BIN="$CARGO_TARGET_DIR/debug/vaak"
# ONNX Runtime's own telemetry off for test binaries too (`vaak` sets it itself at start).
export ORT_DISABLE_TELEMETRY=1
export VAAK_LLM_BIN="$CARGO_TARGET_DIR/debug/vaak-llm"
# Cargo tools the tests use (cargo-deb for the kiosk package), installed by setup.sh --test.
export VAAK_TOOLS_DIR="${VAAK_TOOLS_DIR:-$VAAK_CACHE/tools}"
export VAAK_CARGO_DEB="$VAAK_TOOLS_DIR/bin/cargo-deb"
