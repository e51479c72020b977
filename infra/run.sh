#!/usr/bin/env bash
# Runs pipeline-export on this machine from a fresh clone: makes sure PostgreSQL is up,
# creates the `pipeline_export` database, builds, migrates, seeds a demo user the first time,
# prints a curl command to try, and serves on BIND_ADDR (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_postgres
DB_NAME="${DB_NAME:-pipeline_export}"
ensure_database "$DB_NAME"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@$PGHOST_ADDR:$PGPORT_NUM/$DB_NAME}"
export BIND_ADDR="${BIND_ADDR:-127.0.0.1:8080}"

# A local signing key for JWTs, made once and kept out of the repository.
mkdir -p .local
if [ -z "${JWT_SECRET:-}" ]; then
  [ -s .local/jwt_secret ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .local/jwt_secret
  JWT_SECRET=$(cat .local/jwt_secret)
  export JWT_SECRET
fi

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

log "serving on http://$BIND_ADDR (Ctrl-C to stop)"
exec "$BIN" serve
