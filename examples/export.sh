#!/usr/bin/env bash
# Creates a background export, waits for it, downloads the file and checks its SHA-256.
#
#   PIPELINE_TOKEN=pex_... examples/export.sh [FORMAT] [OUTPUT_DIR]
#
# FORMAT: json, csv (default), ndjson, xlsx or pdf. PIPELINE_URL defaults to
# http://127.0.0.1:8080. Needs bash, curl and jq.
set -euo pipefail

BASE_URL="${PIPELINE_URL:-http://127.0.0.1:8080}"
BASE_URL="${BASE_URL%/}"
FORMAT="${1:-csv}"
OUT_DIR="${2:-.}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ -n "${PIPELINE_TOKEN:-}" ] || die "PIPELINE_TOKEN is not set (a personal token pex_... or a JWT)"
command -v curl >/dev/null || die "curl is not installed"
command -v jq >/dev/null || die "jq is not installed (Debian: apt-get install jq)"
[ -d "$OUT_DIR" ] || die "output directory $OUT_DIR does not exist"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
body_file="$tmp/body" headers="$tmp/headers" part="$tmp/download"

# api METHOD PATH [JSON]: calls the API, leaves the body in $body_file, prints the status.
api() {
  local args=(-sS -o "$body_file" -w '%{http_code}' -X "$1"
    -H "Authorization: Bearer $PIPELINE_TOKEN" -H 'Accept: application/json')
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
  curl "${args[@]}" "$BASE_URL$2" || die "cannot reach $BASE_URL"
}

# Prints the API's error object ({"error": {"code", "message"}}) or the raw body.
api_error() {
  jq -c '.error // .' "$body_file" 2>/dev/null || cat "$body_file"
}

status=$(api POST /api/exports "$(jq -nc --arg f "$FORMAT" '{format: $f}')")
case "$status" in
  200 | 202) ;;
  *) die "POST /api/exports answered $status: $(api_error)" ;;
esac
id=$(jq -r .id "$body_file")
printf 'export %s queued (%s)\n' "$id" "$FORMAT" >&2

# Poll until the export is finished.
while :; do
  status=$(api GET "/api/exports/$id")
  [ "$status" = 200 ] || die "GET /api/exports/$id answered $status: $(api_error)"
  state=$(jq -r .status "$body_file")
  case "$state" in
    queued | running)
      printf '  %s: %s rows\n' "$state" "$(jq -r '.progress.rows_done // 0' "$body_file")" >&2
      sleep 2
      ;;
    succeeded) break ;;
    *) die "export $id is $state: $(jq -c .error "$body_file")" ;;
  esac
done
file_name=$(jq -r .file_name "$body_file")
sha256=$(jq -r .sha256 "$body_file")

# The download endpoint answers 302 to a presigned storage URL. The redirect is followed by
# hand so that the token only ever goes to the API, never to the storage host.
location=$(curl -sS -o "$body_file" -w '%{redirect_url}' \
  -H "Authorization: Bearer $PIPELINE_TOKEN" "$BASE_URL/api/exports/$id/download") \
  || die "cannot reach $BASE_URL"
[ -n "$location" ] || die "GET /api/exports/$id/download did not redirect: $(api_error)"

# Saved under the name the storage sends in Content-Disposition, else the export's
# file_name; only its last path component is used.
curl -sS -f -o "$part" -D "$headers" "$location" || die "the download from storage failed"
name=$(tr -d '\r' <"$headers" | sed -n 's/^[Cc]ontent-[Dd]isposition:.*filename="\{0,1\}\([^";]*\)"\{0,1\}.*$/\1/p' | tail -n 1)
name=$(basename -- "${name:-$file_name}")
case "$name" in "" | . | ..) name="$id" ;; esac

if command -v sha256sum >/dev/null && [ "$sha256" != null ]; then
  actual=$(sha256sum "$part" | cut -d ' ' -f 1)
  [ "$actual" = "$sha256" ] || die "SHA-256 mismatch: expected $sha256, got $actual"
fi
mv -f "$part" "$OUT_DIR/$name"
printf '%s\n' "$OUT_DIR/$name"
