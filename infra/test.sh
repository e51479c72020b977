#!/usr/bin/env bash
# Runs every test against real services, starting what is missing. Extra arguments go to
# `cargo test` (e.g. `infra/test.sh -- filters`).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_postgres
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@$PGHOST_ADDR:$PGPORT_NUM/postgres}"

log "cargo test (build output in $CARGO_TARGET_DIR)"
out="$CACHE_DIR/last-test-run.log"
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$out"
exit "$status"
