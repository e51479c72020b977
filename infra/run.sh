#!/usr/bin/env bash
# Runs pipeline-export on this machine from a fresh clone: makes sure PostgreSQL is up,
# creates the `pipeline_export` database, builds, migrates, seeds a demo user the first time,
# prints a curl command to try, and runs the front and the workers (`all`) on BIND_ADDR
# (default 127.0.0.1:8080). Export files go to .local/exports and emails to .local/mail as
# .eml files, unless S3_BUCKET / SMTP_URL say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_postgres
DB_NAME="${DB_NAME:-pipeline_export}"
ensure_database "$DB_NAME"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@$PGHOST_ADDR:$PGPORT_NUM/$DB_NAME}"
export BIND_ADDR="${BIND_ADDR:-127.0.0.1:8080}"

# Local signing keys for JWTs and download links, made once and kept out of the repository.
mkdir -p .local
local_secret() {
  [ -s ".local/$1" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > ".local/$1"
  cat ".local/$1"
}
export JWT_SECRET="${JWT_SECRET:-$(local_secret jwt_secret)}"
export LINK_SECRET="${LINK_SECRET:-$(local_secret link_secret)}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://$BIND_ADDR}"
# Without S3_BUCKET / SMTP_URL, files and emails stay on this machine.
export STORAGE_DIR="${STORAGE_DIR:-.local/exports}" MAIL_DIR="${MAIL_DIR:-.local/mail}"

log "building (release; the first build takes several minutes)"
cargo build --release --locked --bin pipeline-export
BIN="$CARGO_TARGET_DIR/release/pipeline-export"

"$BIN" migrate
DEMO_EMAIL="${DEMO_EMAIL:-demo@pipeline.local}"
if ! "$BIN" token list --email "$DEMO_EMAIL" >/dev/null 2>&1; then
  log "seeding $DEMO_EMAIL with ${DEMO_JOBS:-1000} jobs"
  "$BIN" seed --email "$DEMO_EMAIL" --jobs "${DEMO_JOBS:-1000}" --base-url "http://$BIND_ADDR" | tee .local/demo.txt
else
  TOKEN=$("$BIN" token create --email "$DEMO_EMAIL" --name quickstart 2>/dev/null)
  printf 'token: %s\ntry:   curl -sS -OJ -H '\''Authorization: Bearer %s'\'' '\''http://%s/api/export?format=csv'\''\n' \
    "$TOKEN" "$TOKEN" "$BIND_ADDR" | tee .local/demo.txt
fi

log "serving on http://$BIND_ADDR with the workers in the same process (Ctrl-C to stop)"
printf 'API docs:          http://%s/docs (OpenAPI at /openapi.json; metrics at /metrics)\n' "$BIND_ADDR"
printf 'background export: curl -sS -X POST -H '\''Authorization: Bearer <token>'\'' -H '\''Content-Type: application/json'\'' -d '\''{"format":"csv","notify":{"email":true}}'\'' http://%s/api/exports\n' "$BIND_ADDR"
printf 'weekly backup:     curl -sS -X POST -H '\''Authorization: Bearer <token>'\'' -H '\''Content-Type: application/json'\'' -d '\''{"cadence":{"weekly":{"weekday":"monday","time":"08:00"}},"timezone":"Europe/Berlin"}'\'' http://%s/api/export-schedules\n' "$BIND_ADDR"
exec "$BIN" all
