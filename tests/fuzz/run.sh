#!/bin/bash
# Runs every built libFuzzer target for FUZZ_SECONDS, starting from its
# checked-in seed corpus (tests/fuzz/corpus/<target>/). New inputs go to a
# scratch directory so the tree stays clean. Fails on the first crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ran=0 failed=0
for bin in "$FUZZ_BUILD"/bin/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	mkdir -p "$scratch/$name"
	seeds=tests/fuzz/corpus/$name
	[ -d "$seeds" ] || seeds=
	if "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$scratch/" "$scratch/$name" $seeds \
		>"$scratch/$name.log" 2>&1; then
		echo "fuzz: $name ok ($(grep -o 'Done [0-9]* runs' "$scratch/$name.log" || echo '? runs'))"
		ran=$((ran + 1))
	else
		echo "fuzz: $name FAILED"; tail -40 "$scratch/$name.log"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $ran passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$ran" -gt 0 ]
