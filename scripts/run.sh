#!/usr/bin/env bash
# Starts Wamage with its embedded defaults: builds the web UI and the release binary, then serves
# API + UI on http://127.0.0.1:8080 with a SQLite database in ./data (override with WAMAGE_* env
# vars or flags, e.g. `./scripts/run.sh --listen 0.0.0.0:9000`).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "Node.js 20+ with npm is required to build the web UI" >&2; exit 1; }

echo "==> building the web UI"
(
  cd web
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
  npm run build
)
echo "==> building the wamage binary (release)"
cargo build --release --bin wamage
echo "==> starting"
exec ./target/release/wamage serve "$@"
