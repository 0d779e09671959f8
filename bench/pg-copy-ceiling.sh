#!/usr/bin/env bash
# The PostgreSQL server's own ceiling for a contacts import on this machine: the rows of
# `wamage-bench contacts` (a contact with its search entry and a `city` attribute, a phone
# and an e-mail identity, a group membership) loaded with plain COPY into Wamage's real
# schema (`wamage migrate`), with none of Wamage's work (no CSV parsing, no phone-number
# parsing, no duplicate checks, no import bookkeeping). Timed twice: one COPY per table in
# turn (one backend), and the rows split in two halves loaded by two sessions at once (what
# the import does with WAMAGE_IMPORT_WRITERS=2). An import cannot be faster than this.
# Writes bench/results/pg-copy-ceiling.json.
#
#   bench/pg-copy-ceiling.sh [--rows 1000000] [--postgres-url postgres://postgres@127.0.0.1:5432/postgres]
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
cd "$(dirname "$0")/.."
rows=1000000
url="${WAMAGE_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --postgres-url) url=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --bin wamage >&2
bin="$target_dir/release/wamage"
db="wamage_ceiling_$$"
dburl="${url%/*}/$db"
work=$(mktemp -d)
trap 'psql -q "$url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
psql -q "$url" -c "CREATE DATABASE $db" >/dev/null
WAMAGE_DATABASE_URL="$dburl" "$bin" migrate >/dev/null

org=0190d3a0-0000-7000-8000-000000000001
grp=0190d3a0-0000-7000-8000-000000000002
psql -q "$dburl" <<SQL
INSERT INTO organizations (id, name, created_at) VALUES ('$org', 'Ceiling', 0);
INSERT INTO contact_groups (id, org_id, name, name_key, created_at, updated_at)
  VALUES ('$grp', '$org', 'Imported', 'imported', 0, 0);
-- Time-ordered ids like the service's UUIDv7s; names, phones and e-mails like the bench's file.
CREATE TEMP VIEW gen AS
SELECT g,
  (lpad(to_hex(1700000000000 + g), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0')
    || '8' || lpad(to_hex(g), 15, '0'))::uuid AS cid,
  (lpad(to_hex(1700000000000 + g), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0')
    || '9' || lpad(to_hex(g), 15, '0'))::uuid AS pid,
  (lpad(to_hex(1700000000000 + g), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0')
    || 'a' || lpad(to_hex(g), 15, '0'))::uuid AS eid,
  'Person ' || g AS name,
  '+1415' || lpad((g % 10000000)::text, 7, '0') || (g / 10000000) AS phone,
  'person' || g || '@example.com' AS email
FROM generate_series(1, $rows) g;
\copy (SELECT cid, '$org', name, lower(name), NULL, NULL, NULL, NULL, false, false, json_build_object('city', 'City ' || (g % 500))::text, array_to_tsvector(ARRAY['person', g::text, phone, email, 'city', (g % 500)::text]), 1700000000000, 1700000000000, NULL FROM gen) TO '$work/contacts.tsv'
\copy (SELECT pid, '$org', cid, 'phone', phone, 1700000000000, NULL, NULL FROM gen UNION ALL SELECT eid, '$org', cid, 'email', email, 1700000000000, NULL, NULL FROM gen) TO '$work/identities.tsv'
\copy (SELECT '$org', cid, '$grp' FROM gen) TO '$work/members.tsv'
SQL
contact_cols="id, org_id, name, sort_name, company, language, time_zone, notes, favorite, blocked, attributes, search, created_at, updated_at, avatar_key"
identity_cols="id, org_id, contact_id, kind, value, created_at, import_id, import_line"
member_cols="org_id, contact_id, group_id"
for f in contacts identities members; do
  split -n l/2 -d "$work/$f.tsv" "$work/$f."
done

empty() {
  psql -q "$dburl" -c "TRUNCATE contacts CASCADE" >/dev/null
  psql -q "$dburl" -c "CHECKPOINT" >/dev/null
}
# Loads part $1 of each table (tsv: the whole file) in one session, one table after another.
load() {
  psql -q "$dburl" -c "\\copy contacts ($contact_cols) FROM '$work/contacts.$1'" >/dev/null
  psql -q "$dburl" -c "\\copy contact_identities ($identity_cols) FROM '$work/identities.$1'" >/dev/null
  psql -q "$dburl" -c "\\copy contact_group_members ($member_cols) FROM '$work/members.$1'" >/dev/null
}
now() { date +%s.%N; }

empty
t0=$(now); load tsv; t1=$(now)
serial=$(echo "$t1 - $t0" | bc)
empty
t0=$(now); load 00 & load 01; wait; t1=$(now)
parallel=$(echo "$t1 - $t0" | bc)
loaded=$(psql -qAt "$dburl" -c "SELECT count(*) FROM contacts")

mkdir -p bench/results
cat > bench/results/pg-copy-ceiling.json <<JSON
{
  "rows": $rows,
  "loaded": $loaded,
  "one_session_s": $(printf '%.2f' "$serial"),
  "one_session_rows_per_sec": $(echo "$rows / $serial" | bc),
  "two_sessions_s": $(printf '%.2f' "$parallel"),
  "two_sessions_rows_per_sec": $(echo "$rows / $parallel" | bc),
  "cores": $(nproc),
  "postgres": "$(psql -qAt "$url" -c 'SHOW server_version')"
}
JSON
cat bench/results/pg-copy-ceiling.json
