#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test (SQLite and in-process always;
# PostgreSQL and Redis when reachable), the web unit tests and the browser tests.
#
# Backends: WAMAGE_TEST_POSTGRES_URL / WAMAGE_TEST_REDIS_URL when set; otherwise a PostgreSQL on
# 127.0.0.1:5432 and a Redis on 127.0.0.1:6379 are used when they answer. What is skipped is said.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
skipped=()
started=$(date +%s)
step() { echo; echo "==> $* ($(( $(date +%s) - started ))s)"; }

# ---- backends -------------------------------------------------------------------------------
if [ -z "${WAMAGE_TEST_POSTGRES_URL:-}" ] && command -v pg_isready >/dev/null \
    && pg_isready -q -h 127.0.0.1 -p 5432 -t 2; then
  export WAMAGE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/wamage_test"
fi
if [ -n "${WAMAGE_TEST_POSTGRES_URL:-}" ]; then
  # A fresh test database per run: every test makes its own schema inside it.
  admin_url="${WAMAGE_TEST_POSTGRES_URL%/*}/postgres"
  db_name="${WAMAGE_TEST_POSTGRES_URL##*/}"
  db_name="${db_name%%\?*}"
  if command -v psql >/dev/null; then
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null
    psql -q "$admin_url" -c "CREATE DATABASE \"$db_name\"" >/dev/null
  fi
  echo "PostgreSQL suites: on ($WAMAGE_TEST_POSTGRES_URL)"
else
  skipped+=("PostgreSQL suites (no WAMAGE_TEST_POSTGRES_URL and nothing on 127.0.0.1:5432)")
fi
if [ -z "${WAMAGE_TEST_REDIS_URL:-}" ] && command -v redis-cli >/dev/null \
    && redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  export WAMAGE_TEST_REDIS_URL="redis://127.0.0.1:6379"
fi
if [ -n "${WAMAGE_TEST_REDIS_URL:-}" ]; then
  echo "Redis suites: on ($WAMAGE_TEST_REDIS_URL)"
else
  skipped+=("Redis suites (no WAMAGE_TEST_REDIS_URL and nothing on 127.0.0.1:6379)")
fi

# ---- Rust -----------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
step "web UI build (embedded by the binary, exercised by the tests)"
(
  cd web
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
  npm run build
)
step "cargo test (all crates)"
cargo test --workspace --all-features --locked --no-fail-fast

# ---- web ------------------------------------------------------------------------------------
step "web unit tests"
(cd web && npm run typecheck && npm test)
# The Socket.IO gateway with the official socket.io-client, against the real binary.
cargo build --locked --bin wamage
(cd web && WAMAGE_BIN="$target_dir/debug/wamage" npm run test:realtime)

step "browser tests"
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
if [ -x "$chromium" ]; then
  cargo build --locked --bin wamage --bin fake-providers
  (cd web && CHROMIUM_PATH="$chromium" WAMAGE_BIN="$target_dir/debug/wamage" npm run e2e)
else
  skipped+=("browser tests (no Chromium at $chromium and it could not be installed)")
fi

echo
echo "==> done in $(( $(date +%s) - started ))s"
if [ ${#skipped[@]} -gt 0 ]; then
  echo "Skipped:"
  for s in "${skipped[@]}"; do echo "  - $s"; done
fi
