#!/bin/sh
# run.sh - run benchmarks, keep their output, then print one table of every
# goal (tests/bench/goals.txt) whose benchmark ran: its figure and whether
# it is met. A benchmark that fails stops the run (exit 1); a goal not met
# does not (benchmarks are not timed tests).
# Usage: tests/bench/run.sh BUILD_DIR BENCH_BINARY...
set -u
build=$1
shift
mkdir -p "$build/bench"
log=$build/bench/bench.log
: >"$log"
rc=0
for b in "$@"; do
	echo "== $b" | tee -a "$log"
	# the benchmark's output to the terminal and the log, its status kept
	{ "$b" "$build" 2>&1; echo $? >"$build/bench/.rc"; } | tee -a "$log"
	if [ "$(cat "$build/bench/.rc")" != 0 ]; then
		echo "bench: $b failed" | tee -a "$log"
		rc=1
		break
	fi
done
rm -f "$build/bench/.rc"
dir=$(dirname "$0")
awk -v ran="$*" '
	FNR == NR {
		if ($0 ~ /^#/ || NF < 4) next
		goals[++n] = $1; op[n] = $2; target[n] = $3; bench[n] = $4
		next
	}
	/^BENCH / {
		for (i = 2; i <= NF; i++) {
			eq = index($i, "=")
			if (eq) fig[substr($i, 1, eq - 1)] = substr($i, eq + 1)
		}
	}
	END {
		met = 0; missed = 0; shown = 0
		printf "\n%-30s %-12s %-10s %s\n", "goal", "target", "figure", "state"
		for (i = 1; i <= n; i++) {
			if (index(ran, "bench_" bench[i]) == 0) continue
			shown++
			k = goals[i]
			if (!(k in fig) || fig[k] !~ /^-?[0-9.]+$/) {
				state = "no figure"; v = "-"; missed++
			} else {
				v = fig[k] + 0; t = target[i] + 0
				ok = (op[i] == "<=" && v <= t) || (op[i] == "<" && v < t) ||
				     (op[i] == ">=" && v >= t) || (op[i] == ">" && v > t) ||
				     (op[i] == "==" && v == t)
				state = ok ? "met" : "NOT met"
				if (ok) met++; else missed++
				v = fig[k]
			}
			printf "%-30s %-12s %-10s %s (bench-%s)\n", k, op[i] " " target[i], v, state, bench[i]
		}
		printf "goals: %d met, %d not met, of %d for the benchmarks run\n", met, missed, shown
	}' "$dir/goals.txt" "$log"
exit $rc
