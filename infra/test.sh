#!/usr/bin/env bash
# Runs every test against real services, starting what is missing. Extra arguments go to
# `cargo test` (e.g. `infra/test.sh -- filters`).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_postgres
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@$PGHOST_ADDR:$PGPORT_NUM/postgres}"

log "cargo test (build output in $CARGO_TARGET_DIR)"
cargo test --workspace --locked "$@"
