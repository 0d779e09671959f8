#!/usr/bin/env bash
# Realtime benchmarks of the Socket.IO gateway (issue 4), against a release `wamage serve` on a
# fresh data dir (SQLite, embedded defaults) on 127.0.0.1, with the official socket.io-client
# (Node) as clients:
#
#   bench/realtime.sh connections [--sockets 20000] [--users 4] [--server wamage|reference]
#       N authenticated idle sockets; RSS per connection (target ≤ 30 KB).
#       → bench/results/realtime-connections[-reference].json
#   bench/realtime.sh fanout [--servers wamage,reference[,floor]] [--scenarios 1k,10k] [--users 1000]
#       a chat room of 1,000 sockets at 10 msg/s and one of 10,000 at 1 msg/s, messages sent
#       over REST; end-to-end latency at every socket and the server-side fan-out histogram
#       (targets: e2e p99 ≤ 25 ms at 1k, ≤ 150 ms at 10k); the Node socket.io v4 reference server
#       through the same scenarios in the same run; `--servers wamage,reference,floor` adds the
#       floor (`wamage-bench ws-floor`, built with `cargo build --release -p wamage-bench`).
#       → bench/results/realtime-fanout.json
#
# Options after the benchmark name go to bench/realtime/{connections,fanout}.mjs (see their
# headers). The release binary is taken from $WAMAGE_BENCH_BIN, $CARGO_TARGET_DIR/release/wamage,
# /root/.cache/wamage/target/release/wamage or target/release/wamage; `--build` first runs
#   cargo build --release -p wamage-server --bin wamage
# Every run is bounded (fixed socket and message counts, fixed durations) and stops the servers
# and client processes it started, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-}
shift || true
case "$what" in
  connections|fanout) ;;
  *) echo "usage: bench/realtime.sh connections|fanout [--build] [options]" >&2; exit 2 ;;
esac
args=()
for a in "$@"; do
  if [ "$a" = "--build" ]; then
    cargo build --release -p wamage-server --bin wamage >&2
  else
    args+=("$a")
  fi
done

command -v node >/dev/null || { echo "node (20+) is required" >&2; exit 1; }
# Each socket is a file descriptor in the server and in a client process: raise the limit
# (root may raise the hard limit; otherwise use what the hard limit allows).
ulimit -Hn 262144 2>/dev/null || true
ulimit -Sn "$(ulimit -Hn)"
export BENCH_NOFILE=$(ulimit -n)
if [ "$BENCH_NOFILE" -lt 65536 ]; then
  echo "note: ulimit -n is $BENCH_NOFILE and cannot be raised here (no CAP_SYS_RESOURCE)" >&2
fi

# The client and reference-server packages (socket.io-client, socket.io v4), pinned in
# bench/realtime/package-lock.json.
if [ ! -d bench/realtime/node_modules/socket.io-client ] || [ ! -d bench/realtime/node_modules/socket.io ]; then
  (cd bench/realtime && npm ci --no-audit --no-fund >&2)
fi

mkdir -p bench/results
exec node "bench/realtime/$what.mjs" "${args[@]+"${args[@]}"}"
