#!/usr/bin/env bash
# The fuzz campaign: every target for MINUTES minutes (default 1), one after
# the other, each on its corpus (fuzz/corpus/TARGET, grown in place) and its
# seeds (fuzz/seeds/TARGET where present). Prints one line per target:
# executions, final coverage (libFuzzer's cov/ft) and corpus size.
#
#   fuzz/run-all.sh            # 1 minute each
#   fuzz/run-all.sh 10         # 10 minutes each (0.25: 15 seconds)
#   fuzz/run-all.sh --regress  # run each corpus once, no fuzzing (CI)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Runs on the stable
# toolchain without a sanitizer (--sanitizer none); a crash leaves its input
# under fuzz/artifacts/TARGET and makes the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=fuzz
minutes=1
case "${1:-}" in
  --regress) mode=regress ;;
  "") ;;
  *) minutes=$1 ;;
esac
export CARGO_TARGET_DIR="${AKIHABARA_FUZZ_TARGET_DIR:-$HOME/.cache/akihabara-fuzz-target}"
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^akihabara-fuzz$')
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

cargo fuzz build --sanitizer none --release >/dev/null

printf '%-14s %14s %8s %8s %7s\n' target executions cov ft corpus
status=0
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  dirs=("fuzz/corpus/$t")
  [ -d "fuzz/seeds/$t" ] && dirs+=("fuzz/seeds/$t")
  if [ "$mode" = regress ]; then
    args=(-runs=0)
  else
    args=(-max_total_time="$(awk "BEGIN { print int($minutes * 60) }")" -print_final_stats=1)
  fi
  if ! cargo fuzz run --sanitizer none --release "$t" "${dirs[@]}" -- "${args[@]}" \
      >"$log_dir/$t.log" 2>&1; then
    echo "$t: FAILED (see below)"; tail -40 "$log_dir/$t.log"; status=1; continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log_dir/$t.log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log_dir/$t.log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  [ -z "$execs" ] && execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  files=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '%-14s %14s %8s %8s %7s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$files"
done
exit $status
