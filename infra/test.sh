#!/usr/bin/env bash
# Runs every test against real services, starting what is missing: PostgreSQL, s3s-fs (S3
# with signature checks) and maildev (SMTP); installs poppler-utils, a CJK font and Chromium
# for the report and download-page tests. Extra arguments go to `cargo test`
# (e.g. `infra/test.sh -- filters`).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

ensure_postgres
ensure_s3
ensure_maildev
ensure_test_tools
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@$PGHOST_ADDR:$PGPORT_NUM/postgres}"
export S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_DATA_DIR="$CACHE_DIR/s3-data"
export AWS_ACCESS_KEY_ID="$S3_TEST_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_TEST_SECRET_KEY" AWS_REGION=us-east-1
# Credentials are in the environment: never let the AWS SDK probe instance metadata.
export AWS_EC2_METADATA_DISABLED=true
export TEST_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" MAILDEV_API_URL="http://127.0.0.1:$MAILDEV_WEB_PORT"
export MAILDEV_SMTP_URL="$TEST_SMTP_URL"

log "cargo test (build output in $CARGO_TARGET_DIR)"
out=$(mktemp "${TMPDIR:-/tmp}/pipeline-export-tests.XXXXXX")
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$out"
exit "$status"
