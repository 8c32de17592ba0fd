#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# summarize.sh - add up several "N passed, N failed" results.
#
# Usage: qemu/summarize.sh RESULTFILE...
#
# Each RESULTFILE is the saved output of qemu/judge.sh (or anything whose
# last line of that shape is its verdict; one word and a colon may stand
# before it, ", N skipped" may follow). A missing or unreadable file, a
# file without such a line, or one with "0 passed, 0 failed" (nothing ran)
# counts as 1 failed. Prints one line per file, then exactly one last line
# "N passed, N failed" with the sums.
# Exit: 0 if every file has failed == 0 and passed > 0, else 1; 2 usage.
set -euo pipefail

(($# >= 1)) || {
	echo "usage: $0 RESULTFILE..." >&2
	exit 2
}

total_pass=0 total_fail=0 ok=1
for f in "$@"; do
	line=''
	if [[ -r $f ]]; then
		line=$(tr -d '\r' <"$f" |
			grep -E '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' |
			tail -n 1 || true)
	fi
	if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		p=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]}
		if ((p + n == 0)); then
			echo "summarize: $f: nothing ran, counted as 1 failed"
			n=1
		fi
	else
		echo "summarize: $f: no 'N passed, N failed' line, counted as 1 failed"
		p=0 n=1
	fi
	echo "summarize: $f: passed $p, failed $n"
	((n == 0 && p > 0)) || ok=0
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + n))
done
echo "$total_pass passed, $total_fail failed"
((ok && total_fail == 0 && total_pass > 0))
