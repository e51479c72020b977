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
