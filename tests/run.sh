#!/usr/bin/env bash
# run.sh BUILD TEST... - run each test binary, count its PASS/FAIL/SKIP lines,
# check the code format, and end with "N passed, M failed, K skipped".
set -u
build=$1
shift
pass=0 fail=0 skip=0
log=$(mktemp)
skipped=()
failed=()
trap 'rm -f "$log"' EXIT

# A sanitized build (make test SANITIZE=1): every report of every process the
# tests start (daemons and VMMs included) lands in $san, and fails the run.
san=
if [ $# -gt 0 ] && nm "$1" 2>/dev/null | grep -q __asan_init; then
	san="$build/sanitizer-reports"
	rm -rf "$san" && mkdir -p "$san"
	export ASAN_OPTIONS="log_path=$san/asan:detect_leaks=1:abort_on_error=0"
	export UBSAN_OPTIONS="log_path=$san/ubsan:print_stacktrace=1:halt_on_error=1"
fi

count() { grep -c "^$1 " "$log" || true; }

for t in "$@"; do
	echo "== ${t#"$build"/}"
	"$t" "$build" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	p=$(count PASS) f=$(count FAIL) s=$(count SKIP)
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL ${t##*/}: exited with status $rc without reporting a failed case"
		f=1
	fi
	if [ $((p + f + s)) -eq 0 ]; then
		echo "FAIL ${t##*/}: ran no test case"
		f=1
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	while read -r line; do skipped+=("${t##*/}: ${line#SKIP }"); done < <(grep '^SKIP ' "$log")
	while read -r line; do failed+=("${t##*/}: ${line#FAIL }"); done < <(grep '^FAIL ' "$log")
done

# Each fuzz harness replays its corpus (seeds and every crash ever found), once;
# an input that runs 60 s is a hang (one once deadlocked a device).
for f in "$build"/fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=${f##*/} corpus=tests/fuzz/corpus/${f##*/}
	echo "== fuzz/$name ($corpus)"
	if ASAN_OPTIONS= UBSAN_OPTIONS= "$f" -runs=0 -timeout=60 "$corpus" >"$log" 2>&1; then
		echo "PASS $name: $(ls "$corpus" | wc -l) inputs replayed"
		pass=$((pass + 1))
	else
		tail -30 "$log"
		echo "FAIL $name: an input of $corpus crashes or hangs it"
		failed+=("fuzz/$name")
		fail=$((fail + 1))
	fi
done

if [ -n "$san" ]; then
	echo "== sanitizer reports ($san)"
	if [ -z "$(ls -A "$san")" ]; then
		echo "PASS sanitizers: no report from any process"
		pass=$((pass + 1))
	else
		for r in "$san"/*; do echo "--- $r"; head -60 "$r"; done
		echo "FAIL sanitizers: $(ls "$san" | wc -l) report(s)"
		failed+=("sanitizers: reports in $san")
		fail=$((fail + 1))
	fi
fi

echo "== format (clang-format, .clang-format)"
if make -s format-check >"$log" 2>&1; then
	echo "PASS format-check"
	pass=$((pass + 1))
else
	head -40 "$log"
	echo "FAIL format-check: run 'make format'"
	fail=$((fail + 1))
	failed+=("format-check")
fi

echo
if [ ${#skipped[@]} -gt 0 ]; then
	echo "SKIPPED (these did NOT run):"
	printf '  %s\n' "${skipped[@]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED:"
	printf '  %s\n' "${failed[@]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
