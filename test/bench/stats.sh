# shellcheck shell=bash
# test/bench/stats.sh — the small statistics every benchmark here reports
# with.  Source it after test/lib.sh; it defines functions only.

# Median of the numbers given as arguments.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) exit 1
		if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# a / b to three decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# (max - min) / median of the arguments, in %.
spread() {
	printf '%s\n' "$@" | sort -g | awk -v m="$(median "$@")" 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f", (hi - lo) * 100 / m }'
}

# The arguments joined with ", " (per-round figures in a table cell).
join_runs() { echo "$*" | sed 's/^ *//; s/ \+/, /g'; }

# Variants $2... in round $1, rotated by the round, so that no variant always
# runs first or last in a round (the machine's load drifts within a round too).
rotated() {
	local r=$1 i
	shift
	local vs=("$@")
	for i in "${!vs[@]}"; do
		echo "${vs[$(((i + r - 1) % ${#vs[@]}))]}"
	done
}
