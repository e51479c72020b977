# Shared by the infra scripts: where things are cached, and how to make sure a service runs.
# Source it; do not run it.

# Installs and build output live outside the repository, so a fresh clone reuses them.
CACHE_DIR="${PIPELINE_EXPORT_CACHE:-$HOME/.cache/pipeline-export}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
mkdir -p "$CACHE_DIR"

PGHOST_ADDR="${PGHOST_ADDR:-127.0.0.1}"
PGPORT_NUM="${PGPORT_NUM:-5432}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Starts the machine's PostgreSQL cluster if it is not answering, then waits for it.
ensure_postgres() {
  if pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT_NUM"; then
    return 0
  fi
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 60); do
    pg_isready -q -h "$PGHOST_ADDR" -p "$PGPORT_NUM" && return 0
    sleep 0.5
  done
  echo "PostgreSQL is not answering on $PGHOST_ADDR:$PGPORT_NUM; start it and retry" >&2
  return 1
}

# Creates a database if it does not exist (as the postgres superuser, trust auth locally).
ensure_database() {
  local name="$1"
  if ! psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$name'" postgres | grep -q 1; then
    log "creating database $name"
    psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -qc "CREATE DATABASE \"$name\"" postgres
  fi
}

# --- S3-compatible object storage for tests and local runs: s3s-fs, which checks SigV4. ---
S3_PORT="${S3_PORT:-9000}"
S3_TEST_ACCESS_KEY="${S3_TEST_ACCESS_KEY:-pipeline-test}"
S3_TEST_SECRET_KEY="${S3_TEST_SECRET_KEY:-pipeline-test-secret}"

# Installs s3s-fs once into the cache (a few minutes of compiling), then starts it on
# 127.0.0.1:$S3_PORT with its data under the cache, unless something already answers there.
ensure_s3() {
  local root="$CACHE_DIR/s3s-fs-0.14.1"
  if [ ! -x "$root/bin/s3s-fs" ]; then
    log "installing s3s-fs 0.14.1 into $root (once)"
    CARGO_TARGET_DIR="$CACHE_DIR/s3s-fs-build" \
      cargo install s3s-fs --version 0.14.1 --locked --features binary --root "$root"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; then
    return 0
  fi
  log "starting s3s-fs on 127.0.0.1:$S3_PORT"
  mkdir -p "$CACHE_DIR/s3-data"
  # Started from the cache folder: s3s-fs resolves paths against its working directory, which
  # must outlive the checkout that started it.
  # Only the server runs on, detached, with its output in the log (no process may hold the
  # caller's stdout open).
  (
    cd "$CACHE_DIR" || exit 1
    setsid nohup "$root/bin/s3s-fs" --host 127.0.0.1 --port "$S3_PORT" \
      --access-key "$S3_TEST_ACCESS_KEY" --secret-key "$S3_TEST_SECRET_KEY" \
      "$CACHE_DIR/s3-data" </dev/null >"$CACHE_DIR/s3s-fs.log" 2>&1 &
  )
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "s3s-fs did not start; see $CACHE_DIR/s3s-fs.log" >&2
  return 1
}

# --- SMTP for tests and local runs: maildev (npm), read back through its HTTP API. ---
SMTP_PORT="${SMTP_PORT:-1025}"
MAILDEV_WEB_PORT="${MAILDEV_WEB_PORT:-1080}"

ensure_maildev() {
  local root="$CACHE_DIR/maildev"
  if [ ! -x "$root/node_modules/.bin/maildev" ]; then
    log "installing maildev 3 into $root (once)"
    mkdir -p "$root"
    npm install --prefix "$root" --no-audit --no-fund --loglevel=error maildev@3 >/dev/null
  fi
  if curl -sf "http://127.0.0.1:$MAILDEV_WEB_PORT/api/healthz" >/dev/null 2>&1; then
    return 0
  fi
  log "starting maildev (SMTP 127.0.0.1:$SMTP_PORT, web 127.0.0.1:$MAILDEV_WEB_PORT)"
  (
    cd "$CACHE_DIR" || exit 1
    setsid nohup "$root/node_modules/.bin/maildev" --smtp "$SMTP_PORT" --ip 127.0.0.1 \
      --web "$MAILDEV_WEB_PORT" --web-ip 127.0.0.1 </dev/null >"$CACHE_DIR/maildev.log" 2>&1 &
  )
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$MAILDEV_WEB_PORT/api/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "maildev did not start; see $CACHE_DIR/maildev.log" >&2
  return 1
}

# --- Test tools: poppler reads reports back, a CJK font is their fallback, Chromium opens pages. ---
CJK_FONT=/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf

# Installs, from Debian's packages, what the tests read files and pages with, where missing:
# poppler-utils (pdftotext, pdfinfo, pdftoppm), fonts-droid-fallback (Chinese, Japanese and
# Korean glyphs for reports), Chromium with its WebDriver for the download page, and what
# the example clients run with (jq; Python's requests, from PyPI).
ensure_test_tools() {
  if ! python3 -c 'import requests' 2>/dev/null; then
    log "installing Python requests (for examples/export.py)"
    python3 -m pip install -q requests 2>/dev/null \
      || python3 -m pip install -q --break-system-packages requests
  fi
  local missing=()
  command -v jq >/dev/null || missing+=(jq)
  command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null && command -v pdfinfo >/dev/null \
    || missing+=(poppler-utils)
  [ -f "$CJK_FONT" ] || missing+=(fonts-droid-fallback)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]} (Debian packages, once)"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# --- Fuzzing: cargo-fuzz drives libFuzzer. ---
# Installs cargo-fuzz once into the cache and puts it on PATH; libfuzzer-sys compiles
# libFuzzer itself, which takes a C++ compiler (Debian's g++, installed if missing).
ensure_cargo_fuzz() {
  local root="$CACHE_DIR/cargo-fuzz-0.13.2"
  if [ ! -x "$root/bin/cargo-fuzz" ]; then
    log "installing cargo-fuzz 0.13.2 into $root (once)"
    CARGO_TARGET_DIR="$CACHE_DIR/cargo-fuzz-build" \
      cargo install cargo-fuzz --version 0.13.2 --locked --root "$root"
  fi
  if ! command -v c++ >/dev/null; then
    log "installing g++ (Debian package, once)"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends g++ >/dev/null
  fi
  export PATH="$root/bin:$PATH"
}
