#!/usr/bin/env bash
# Load figures for RELIABILITY.md, on this machine, against a release build:
#
#   1. GET /api/export?format=json with wrk: 64 connections for DURATION (60 s) on users of
#      100 jobs, then 8 connections on users of 10,000 jobs: requests/s, p50/p99 latency,
#      errors, the server's RSS at the end and its peak.
#   2. 1,000 small background exports queued at once, two `worker` processes: time to drain,
#      p50/p99 queue-to-done latency, and that each ran exactly once (attempts = 1).
#
#   infra/load.sh                 # DURATION=60s JOBS_QUEUED=1000 by default
#   DURATION=20s infra/load.sh    # a quicker look
#
# Needs PostgreSQL (started if down) and wrk (installed from Debian if missing). Uses the
# database pipeline_export_load, files in a temporary directory, mail as .eml files.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

DURATION="${DURATION:-60s}"
JOBS_QUEUED="${JOBS_QUEUED:-1000}"
PORT="${LOAD_PORT:-18080}"

ensure_postgres
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package, once)"
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
fi
DB=pipeline_export_load
psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres
psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -qc "CREATE DATABASE $DB" postgres
export DATABASE_URL="postgres://postgres@$PGHOST_ADDR:$PGPORT_NUM/$DB"
SCRATCH=$(mktemp -d)
export JWT_SECRET=load-test-jwt-secret LINK_SECRET=load-test-link-secret-0123456789
export STORAGE_DIR="$SCRATCH/exports" MAIL_DIR="$SCRATCH/mail" RUST_LOG=warn
export SYNC_EXPORT_MAX_ROWS=10000 DATABASE_MAX_CONNECTIONS=32

log "building (release)"
cargo build --release --locked --bin pipeline-export
BIN="$CARGO_TARGET_DIR/release/pipeline-export"
"$BIN" migrate >/dev/null

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

token_for() { # EMAIL JOBS -> prints a personal token
  "$BIN" seed --email "$1" --jobs "$2" 2>/dev/null | sed -n 's/^token: //p'
}

rss_kib() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }

# wrk's Lua: spread requests over TOKENS (one per user); count non-2xx as errors.
cat >"$SCRATCH/tokens.lua" <<'LUA'
local tokens = {}
for t in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = t end
local n = 0
request = function()
  n = n + 1
  local headers = { ["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1],
                    ["Accept-Encoding"] = "identity" }
  return wrk.format("GET", "/api/export?format=json", headers)
end
local errors = 0
response = function(status) if status ~= 200 then errors = errors + 1 end end
done = function(summary, latency)
  io.write(string.format("RESULT requests=%d seconds=%.1f rps=%.0f p50_ms=%.1f p99_ms=%.1f non200=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

sync_load() { # LABEL USERS JOBS CONNECTIONS
  local label=$1 users=$2 jobs=$3 conns=$4
  log "seeding $users users with $jobs jobs each"
  : >"$SCRATCH/tokens"
  for i in $(seq 1 "$users"); do token_for "load-$label-$i@load.test" "$jobs" >>"$SCRATCH/tokens"; done
  psql "$DATABASE_URL" -qc "ANALYZE jobs" >/dev/null
  BIND_ADDR="127.0.0.1:$PORT" "$BIN" serve >"$SCRATCH/serve-$label.log" 2>&1 &
  local server=$!
  pids+=("$server")
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  log "wrk: $conns connections for $DURATION, users of $jobs jobs"
  TOKENS_FILE="$SCRATCH/tokens" wrk -t2 -c"$conns" -d"$DURATION" --timeout 30s \
    -s "$SCRATCH/tokens.lua" "http://127.0.0.1:$PORT" | grep '^RESULT' | sed "s/^RESULT/sync $label: connections=$conns/"
  printf 'sync %s: server RSS at the end %s KiB, peak %s KiB\n' "$label" \
    "$(rss_kib "$server" VmRSS)" "$(rss_kib "$server" VmHWM)"
  kill "$server"; wait "$server" 2>/dev/null || true
}

sync_load small 64 100 64
sync_load large 8 10000 8

log "queueing $JOBS_QUEUED background exports for two worker processes"
EXPORT_MAX_ACTIVE_PER_USER=$((JOBS_QUEUED + 1)) BIND_ADDR="127.0.0.1:$PORT" "$BIN" serve >"$SCRATCH/serve-queue.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
token=$(token_for "load-queue@load.test" 50)
# Queue every export before the workers start, so all wait at once. Each asks for a different
# period (identical active requests would be answered with the same export).
seq 0 $((JOBS_QUEUED - 1)) \
  | awk '{printf "{\"format\":\"csv\",\"filters\":{\"created_from\":\"2000-01-01T%02d:%02d:%02dZ\"}}\n", $1/3600, ($1/60)%60, $1%60}' \
  | xargs -d '\n' -P 16 -I{} curl -sS -o /dev/null -w "%{http_code}\n" -X POST \
      -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
      -d '{}' "http://127.0.0.1:$PORT/api/exports" | sort | uniq -c | sed 's/^/queue: HTTP answers /'
queued=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM exports WHERE status = 'queued'")
started=$(date +%s.%N)
for w in 1 2; do
  WORKER_CONCURRENCY=4 "$BIN" worker >"$SCRATCH/worker-$w.log" 2>&1 &
  pids+=("$!")
done
while [ "$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM exports WHERE status IN ('queued', 'running')")" != 0 ]; do
  sleep 0.2
done
drained=$(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $started}")
psql "$DATABASE_URL" -tA -F ' ' -c "
  SELECT 'queue: ' || count(*) || ' exports (' || $queued || ' queued at once), drained in $drained s; '
      || count(*) FILTER (WHERE status = 'succeeded') || ' succeeded, '
      || count(*) FILTER (WHERE attempts <> 1) || ' ran more than once; queue-to-done (from the'
      || ' workers'' start) p50 '
      || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - to_timestamp($started)))::numeric, 2)
      || ' s, p99 '
      || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - to_timestamp($started)))::numeric, 2)
      || ' s'
  FROM exports"
files=$(find "$STORAGE_DIR" -type f ! -name '.*' | wc -l)
echo "queue: $files files stored"
