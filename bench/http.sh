#!/usr/bin/env bash
# HTTP benchmarks of a release `wamage` with its embedded defaults (SQLite, in-process cache):
#   1. idle RSS of `wamage serve` (target ≤ 50 MB), read from /proc after start-up settles;
#   2. the authenticated read path: requests/s and p99 latency of `GET /api/v1/me` with a valid
#      access token (target ≥ 20,000 req/s), driven by wrk over loopback.
# Writes bench/results/http.json. Needs wrk (apt-get install wrk). wrk and the server share the
# machine, so the numbers are a floor for a dedicated server.
#
#   bench/http.sh [--duration 20] [--connections 64] [--threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=20; connections=64; threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin wamage >&2
bin="$target_dir/release/wamage"
data=$(mktemp -d)
port=$(( 20000 + RANDOM % 20000 ))
base="http://127.0.0.1:$port"
WAMAGE_LOG_LEVEL=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" >"$data/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/health" >/dev/null && break; sleep 0.1; done

sleep 5
idle_rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")

token=$(curl -fs -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"benchmark passphrase","name":"Bench","organization":"Bench Org"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -fs "$base/api/v1/me" -H "authorization: Bearer $token" >/dev/null

out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency \
  -H "Authorization: Bearer $token" "$base/api/v1/me")
echo "$out" >&2
busy_rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")

mkdir -p bench/results
OUT="$out" IDLE=$idle_rss_kb BUSY=$busy_rss_kb DURATION=$duration CONNS=$connections THREADS=$threads \
python3 - <<'PY' > bench/results/http.json
import json, os, re, platform, datetime
out = os.environ["OUT"]
def unit_ms(v, u):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p = {}
for q in ("50", "75", "90", "99"):
    m = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out)
    if m:
        p[f"p{q}_ms"] = round(unit_ms(*m.groups()), 3)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
errors = re.search(r"Socket errors:.*", out)
print(json.dumps({
    "benchmark": "http",
    "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"nproc": os.cpu_count(), "kernel": platform.release()},
    "idle_rss_mb": round(int(os.environ["IDLE"]) / 1024, 1),
    "rss_after_load_mb": round(int(os.environ["BUSY"]) / 1024, 1),
    "me": {"requests_per_sec": rps, **p, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
           "socket_errors": errors.group(0) if errors else None,
           "duration_s": int(os.environ["DURATION"]), "connections": int(os.environ["CONNS"]),
           "wrk_threads": int(os.environ["THREADS"])},
}, indent=2))
PY
cat bench/results/http.json
