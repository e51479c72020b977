#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ and runs each for FUZZ_SECONDS (30 by default) from its
# committed corpus (fuzz/corpus/<target>). Arguments: the targets to run (default: all).
#
#   infra/fuzz.sh                         # 30 s each (.ci/run: FUZZ_SECONDS=20)
#   FUZZ_SECONDS=600 infra/fuzz.sh cadence
#   FUZZ_MERGE=1 infra/fuzz.sh            # then fold new edges into fuzz/corpus
#
# What a run finds goes to $CACHE_DIR/fuzz-corpus/<target>, outside the repository, emptied
# at the start of each run (so runs start from the committed corpus, whatever ran before);
# FUZZ_MERGE=1 keeps what adds coverage. A crash is saved under fuzz/artifacts/<target>/ and
# fails the run. Built without a sanitizer: the crates forbid unsafe code, so the checks
# that matter are the targets' own assertions, overflow checks and debug assertions (all on).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh
ensure_cargo_fuzz

seconds="${FUZZ_SECONDS:-30}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(filters cadence writers import)
fuzz=(cargo fuzz run --sanitizer none --target-dir "$CACHE_DIR/fuzz-target")

cd fuzz
# fuzz/Cargo.lock must be current (cargo fuzz has no --locked of its own).
cargo fetch --locked --quiet
log "cargo fuzz build (build output in $CACHE_DIR/fuzz-target)"
cargo fuzz build --sanitizer none --target-dir "$CACHE_DIR/fuzz-target"
for target in "${targets[@]}"; do
  found="$CACHE_DIR/fuzz-corpus/$target"
  rm -rf "$found"
  mkdir -p "$found" "corpus/$target"
  log "fuzzing $target for ${seconds}s"
  # The first corpus directory receives what is found; the committed one is only read.
  out="$CACHE_DIR/fuzz-$target.log"
  if ! "${fuzz[@]}" "$target" "$found" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$out" 2>&1; then
    tail -n 60 "$out" >&2
    echo "fuzz target $target failed (log: $out; the input is under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$out" || tail -n 3 "$out"
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    log "merging new coverage of $target into fuzz/corpus/$target"
    "${fuzz[@]}" "$target" "corpus/$target" "$found" -- -merge=1 -use_counters=0 2>&1 | tail -n 2
  fi
done
