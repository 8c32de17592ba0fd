#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# compare.sh - results of the kernel's own selftests from a saved guest log
# (each program's "# ksft-run: NAME: pass|skip|fail (...)" line, printed by
# ksft-run in the guest), as a baseline or compared with one.
#
# Usage:
#   qemu/kselftest/compare.sh results  LOG PROGRAMS
#   qemu/kselftest/compare.sh baseline LOG PROGRAMS OUT [NOTE]
#   qemu/kselftest/compare.sh compare  LOG PROGRAMS BASELINE
#
# PROGRAMS is qemu/kselftest/programs (NAME TIMEOUT DIR/PROGRAM [ARGS]).
# A listed program without a result line (not run, the guest died or
# timed out) counts as "fail".
#   results   prints "NAME RESULT" for every listed program.
#   baseline  writes them to OUT (the recorded baseline, one line per
#             program) under a header of comments: NOTE, the kernel log's
#             "Linux version" line and the number of kernel splat lines.
#   compare   compares with BASELINE: a program that passed or skipped on
#             the baseline kernel and fails here, or passed there and
#             skips here, is a REGRESSION; one that fails on both is
#             listed, not failed; improvements are listed. More kernel
#             splat lines here than the baseline had fail once. Last line:
#             "N passed, N failed" (programs without / with a regression),
#             for qemu/summarize.sh.
# Exit: 0 ok (compare: no regression), 1 regression, 2 usage.
set -euo pipefail

usage() {
	sed -n '8,11s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

(($# >= 3)) || usage
mode=$1 log=$2 programs=$3
[[ -r $programs ]] || { echo "compare.sh: cannot read $programs" >&2; exit 2; }

# NAME RESULT for every listed program, in list order.
results() {
	awk '
	FILENAME == ARGV[1] {
		gsub(/\r/, "")
		if (match($0, /# ksft-run: [^ ]+: (pass|skip|fail) /)) {
			split(substr($0, RSTART + 12, RLENGTH - 12), w, /: | /)
			res[w[1]] = w[2]
		}
		next
	}
	/^[ \t]*(#|$)/ { next }
	{ print $1, ($1 in res) ? res[$1] : "fail" }
	' "${log:-/dev/null}" "$programs"
}

# Kernel splat lines (qemu/judge.sh's list) outside program output; not
# the "traps: PROG[PID] general protection fault ..." line the kernel
# prints for a user program's fatal signal.
splats() {
	grep -E 'BUG:|WARNING:|Oops|Kernel panic|kernel BUG at|Unable to handle|general protection fault|possible (recursive|circular) locking|inconsistent lock state|suspicious RCU usage|INFO: lockdep|KASAN|UBSAN|blocked for more than|detected stalls? on CPU|self-detected stall|scheduling while atomic|sleeping function called|Call Trace:' \
		"$log" 2>/dev/null | grep -vE '^    [^[]|traps: .*\[[0-9]+\] general protection fault ip:' || true
}

[[ -r $log ]] || { echo "kselftest: cannot read the guest log $log (not booted?)"; log=/dev/null; }

case $mode in
results)
	results
	;;
baseline)
	(($# >= 4)) || usage
	out=$4 note=${5:-}
	r=$(results)
	{
		echo "# The kernel's own selftests on the UNPATCHED kernel: the baseline"
		echo "# \`make test\` compares the patched kernel with (qemu/kselftest/compare.sh)."
		echo "# Regenerate with \`make kselftest-baseline\` (docs/kselftest.md)."
		[[ -z $note ]] || echo "# $note"
		echo "# kernel: $(grep -m1 -o 'Linux version [^ ]* ([^)]*)' "$log" || echo unknown)"
		echo "# programs: $(wc -l <<<"$r"); pass $(grep -c ' pass$' <<<"$r" || true)," \
			"fail $(grep -c ' fail$' <<<"$r" || true), skip $(grep -c ' skip$' <<<"$r" || true)"
		echo "# splats: $(splats | grep -c . || true)"
		echo "$r"
	} >"$out.tmp"
	mv -f "$out.tmp" "$out"
	echo "kselftest: baseline $out: $(sed -n 's/^# programs: //p' "$out")"
	;;
compare)
	(($# == 4)) || usage
	base=$4
	[[ -r $base ]] || { echo "kselftest: no baseline $base (make kselftest-baseline)"; echo "0 passed, 1 failed"; exit 1; }
	if ! grep -q '# ksft-run: [^ ]*: [a-z]* (' "$log"; then
		echo "kselftest: no program reported in $log (the guest did not boot or init failed)"
		echo "0 passed, 1 failed"
		exit 1
	fi
	r=$(results)
	sl=$(splats)
	awk -v base_splats="$(sed -n 's/^# splats: //p' "$base")" -v here_splats="$(grep -c . <<<"$sl" || true)" \
		-v splat_lines="$(sed 's/^/kselftest: splat: /' <<<"$sl" | head -n 40)" '
	FILENAME == ARGV[1] { if ($0 !~ /^[ \t]*(#|$)/) b[$1] = $2; next }
	{
		n++; name = $1; now = $2; cnt[now]++
		if (!(name in b)) {
			if (now == "pass") { ok++ } else { bad++; reg = reg "\nkselftest: NOT IN BASELINE " name ": " now " (make kselftest-baseline)" }
			next
		}
		was = b[name]; bcnt[was]++
		if (was == "pass" && now != "pass" || was == "skip" && now == "fail") {
			bad++; reg = reg "\nkselftest: REGRESSION " name ": " was " on the unpatched kernel, " now " on the patched one"
		} else {
			ok++
			if (was == "fail" && now == "fail") both = both " " name
			else if (was != now) better = better " " name "(" was "->" now ")"
		}
	}
	END {
		printf "kselftest: %d programs; unpatched: %d pass, %d fail, %d skip; patched: %d pass, %d fail, %d skip\n", \
			n, bcnt["pass"], bcnt["fail"], bcnt["skip"], cnt["pass"], cnt["fail"], cnt["skip"]
		if (both != "") print "kselftest: fail on both (not counted):" both
		if (better != "") print "kselftest: improved:" better
		if (reg != "") print substr(reg, 2)
		if (here_splats > base_splats + 0) {
			print "kselftest: " here_splats " kernel splat line(s) on the patched kernel, " base_splats + 0 " on the unpatched:"
			print splat_lines
			bad++
		}
		printf "%d passed, %d failed\n", ok, bad
		exit bad ? 1 : 0
	}' "$base" - <<<"$r"
	;;
*) usage ;;
esac
