#!/usr/bin/env bash
# Runs every fuzz target for a time budget and prints a table of what ran.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#
# The targets are the `fuzz_*` tests of the data crate (CIFAR pickle and binary, IDX, images
# through ImageFolder) and of the command (config TOML, checkpoint container and contents, run
# folder); see crates/lmsoftmax-fuzz. A failing input is shrunk and saved into the target's
# tests/fuzz-corpus/<target>/ as crash-<md5>: commit it with the fix, and the suite replays it.
# The test suite itself runs a few hundred cases per target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export LMSOFTMAX_FUZZ_SECONDS="$seconds"
status=0
for package_test in "lmsoftmax-data data" "lmsoftmax cli"; do
  set -- $package_test
  cargo test --locked -q -p "$1" --test "$2" fuzz_ -- --nocapture --test-threads=1 >>"$log" 2>&1 || status=1
done
echo "| target | corpus files | generated cases | seconds | slowest case (s) |"
echo "|---|---:|---:|---:|---:|"
sed -n 's/.*fuzz target \([^:]*\): \([0-9]*\) corpus files replayed, \([0-9]*\) generated cases in \([0-9.]*\) s (slowest \([0-9.]*\) s).*/| \1 | \2 | \3 | \4 | \5 |/p' "$log"
if [ "$status" -ne 0 ]; then
  echo
  echo "FAILED: a target found a failing input (saved in its corpus):"
  grep -E "fuzz target .*(fails|aborted)" "$log" || tail -40 "$log"
fi
exit "$status"
