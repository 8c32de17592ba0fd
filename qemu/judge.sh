#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# judge.sh - judge a SAVED guest console log (from qemu/run-qemu.sh), so a
# report can be re-made without rebooting.
#
# Usage: qemu/judge.sh LOGFILE [LABEL]
#        JUDGE_KNOWN=FILE qemu/judge.sh ...   (KCSAN runs: fuzz/kcsan-known.txt)
#
# The log holds initramfs/init's nested KTAP: a top-level document
# ("KTAP version 1", "1..M", "ok K name" / "not ok K name # why") with each
# program's own output indented by four spaces. Counting:
#   - each program's leaf results (lines "    ok ..." / "    not ok ...",
#     exactly four spaces) count one each: "ok" passes; "not ok" fails;
#     "ok ... # SKIP" FAILS (in this project a guest test that did not run
#     proves nothing); "# XFAIL" passes.
#   - a program whose plan "    1..N" announced more results than it
#     printed: each missing one fails.
#   - a top-level "not ok" not already explained by a failed, skipped or
#     missing leaf (no results, non-zero exit, signal, timeout) fails once;
#     a top-level "ok" with no leaf results passes once.
#   - programs announced by the top-level plan that never reported fail.
#   - no "syslet-init: result" line (boot failed, kernel panic, timeout)
#     fails once; "result fail" with nothing else failed fails once; a log
#     without KTAP (demo/run mode) counts "result pass" as one pass.
#   - any kernel splat (SPLATS below) anywhere outside the programs' own
#     indented output fails once, and every splat line is printed.
#     JUDGE_KNOWN names a file of KCSAN report titles (the text after
#     "BUG: KCSAN: ", one per line, # comments) that the unpatched kernel
#     gives too: a report with one of those titles (an entry ending in
#     "+" matches that function at any offset) is printed as "known",
#     not counted.
# Prints the failing lines, then exactly one last line "N passed, N failed".
# Exit: 0 if failed == 0 and passed > 0, 1 otherwise, 2 usage/unreadable.
set -euo pipefail

# Kernel splats: extended regexes (awk), matched anywhere in a console line
# that is not program output. Keep one per line, with why.
SPLATS=(
	'BUG:'                                       # BUG(), KASAN, soft lockup, sleeping in atomic, ...
	'WARNING:'                                   # WARN_ON() and lockdep's headers
	'Oops'                                       # an oops
	'Kernel panic'                               # panic() (panic=-1 reboots right after)
	'kernel BUG at'                              # BUG_ON()
	'Unable to handle'                           # bad kernel paging request
	'general protection fault'                   # #GP in the kernel
	'possible recursive locking'                 # lockdep
	'possible circular locking'                  # lockdep
	'inconsistent lock state'                    # lockdep
	'suspicious RCU usage'                       # lockdep RCU checks
	'INFO: lockdep'                              # lockdep internal trouble
	'KASAN'                                      # KASAN reports
	'UBSAN'                                      # UBSAN reports
	'INFO: task .* blocked for more than'        # hung task detector
	'detected stalls? on CPU'                    # RCU stall
	'self-detected stall'                        # RCU stall
	'scheduling while atomic'                    # sleeping in atomic context
	'sleeping function called from invalid context' # might_sleep()
	'Call Trace:'                                # any stack dump
)

usage() {
	echo "usage: $0 LOGFILE [LABEL]" >&2
	exit 2
}

(($# == 1 || $# == 2)) || usage
log=$1
label=${2:-$(basename -- "$log")}
[[ -r $log ]] || {
	echo "judge: $label: cannot read $log" >&2
	echo "0 passed, 1 failed"
	exit 2
}

splat_re=$(
	IFS='|'
	echo "${SPLATS[*]}"
)
known=
if [[ -n ${JUDGE_KNOWN:-} ]]; then
	[[ -r $JUDGE_KNOWN ]] || {
		echo "judge: $label: cannot read JUDGE_KNOWN=$JUDGE_KNOWN" >&2
		echo "0 passed, 1 failed"
		exit 2
	}
	known=$(sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$JUDGE_KNOWN")
fi

awk -v label="$label" -v splat_re="$splat_re" -v known="$known" '
function say(msg) { print "judge: " label ": " msg }
# The printk time of a console line in seconds, or -1.
function stamp(l,    t) {
	if (!match(l, /\[ *[0-9]+\.[0-9]+\]/)) return -1
	t = substr(l, RSTART + 1, RLENGTH - 2); gsub(/ /, "", t)
	return t + 0
}
# A KCSAN report whose title is one of JUDGE_KNOWN (an entry ending in
# "+", a race at unknown origin, matches that function at any offset).
function known_race(l,    t, i) {
	if (!match(l, /BUG: KCSAN: /)) return 0
	t = substr(l, RSTART + RLENGTH); sub(/[ \t]+$/, "", t)
	for (i = 1; i <= nknown; i++)
		if (kt[i] ~ /\+$/ ? substr(t, 1, length(kt[i])) == kt[i] : t == kt[i]) return 1
	return 0
}
function reset() { plan = -1; res = 0; lp = 0; lf = 0; ls = 0 }
# Closes the current program with its top-level line (empty if none).
function finish(top,    missing, explained, top_ok) {
	missing = (plan > res) ? plan - res : 0
	passed += lp
	failed += lf + ls + missing
	if (missing)
		say(name ": " missing " of " plan " planned results missing")
	explained = lf + ls + missing
	if (top == "") {
		say(name ": no top-level result (init or the kernel died?)")
		failed++
	} else {
		top_ok = (top !~ /^not ok/)
		if (!top_ok && !explained) { say(top); failed++ }
		if (top_ok && res == 0) passed++
	}
	programs++
	reset()
}
BEGIN {
	reset(); name = "(before first program)"; topplan = -1; inprog = 0
	nknown = (known == "") ? 0 : split(known, kt, "\n")
}
{
	gsub(/\r/, "")
	line = $0
}
# The report of the OOM killer dumps the stack of the task that ran out
# of memory, and the process it kills may then fail allocations, each
# with a "page allocation failure" (or "vmalloc error") and a stack dump:
# the kernel doing its job (the memory hogs of syslet-fuzz ask for it),
# not a splat.  Exempt are the report dump, and the dumps of the PID of a
# victim (the thread that ate the memory) within 60 s of its kill (PIDs
# are reused); those of any other task count.  A dump is tied to its
# header by the dump line of its own task ("CPU: N UID: N PID: N"),
# within 10 lines of the header, and its "Call Trace:" within 10 lines of
# that; the exemption ends with the dump (the closing TASK marker).  Not
# exempt even there: a spare made for a victim (syslet_create_spare in
# its failed allocation: patch 0076 forbids it), and a victim whose
# oom_score_adj is not 1000 (every hog sets 1000; another victim means
# something else ate the memory).
line ~ /invoked oom-killer: / { hdr = NR; hdr_kind = "report" }
line ~ /page allocation failure: |vmalloc error: / { hdr = NR; hdr_kind = "alloc" }
match(line, /oom-kill:.*,pid=[0-9]+,/) {
	v = substr(line, RSTART, RLENGTH); sub(/.*,pid=/, "", v); sub(/,$/, "", v); victim[v] = stamp(line)
}
line ~ /Out of memory: Killed process / && line !~ /oom_score_adj:1000/ {
	splats++; say("splat: an OOM victim that no test chose (oom_score_adj not 1000): " line)
}
hdr && NR - hdr <= 10 && match(line, /CPU: [0-9]+ UID: [0-9]+ PID: [0-9]+ /) {
	v = substr(line, RSTART, RLENGTH); sub(/.* PID: /, "", v); sub(/ $/, "", v)
	if (hdr_kind == "report") { dump = NR; dump_kind = "report" }
	else if ((v in victim) && (victim[v] < 0 || stamp(line) - victim[v] <= 60)) { dump = NR; dump_kind = "victim" }
	hdr = 0
}
dump && NR - dump <= 10 && line ~ /Call Trace:/ { exempt = dump_kind; dump = 0; next }
exempt == "victim" && line ~ /syslet_create_spare/ { splats++; say("splat: a spare made for an OOM victim: " line) }
line ~ /<\/TASK>/ { exempt = ""; dump = 0 }
# Kernel splats: outside program output, or inside it where a kernel
# message (printk timestamp) landed in the middle of a program line.
{ kn = nknown && known_race(line) }
kn { say("known (unpatched kernel too): " line) }
!kn && line ~ splat_re && (line !~ /^    / || line ~ /\[ *[0-9]+\.[0-9]+\] /) { splats++; say("splat: " line) }
# init result line (may share a console line with kernel output).
line !~ /^    / && match(line, /syslet-init: result [a-z]+/) {
	result = substr(line, RSTART + 20, RLENGTH - 20)
}
# The header, or the header with a kernel message written after it before
# init printed the newline.
line ~ /^KTAP version 1(\[ *[0-9]+\.[0-9]+\] .*)?$/ { ktap = 1; next }
ktap && topplan < 0 && line ~ /^1\.\.[0-9]+/ { sub(/^1\.\./, "", line); topplan = line + 0; next }
# A new program starts: "# syslet-init: [k/M] name: argv".
line ~ /^# syslet-init: \[[0-9]+\/[0-9]+\] / {
	if (inprog) finish("")
	n = line; sub(/^# syslet-init: \[[0-9]+\/[0-9]+\] /, "", n); sub(/:.*/, "", n)
	name = n; inprog = 1; reset(); next
}
line ~ /^    1\.\.[0-9]+/ { if (plan < 0) { p = line; sub(/^    1\.\./, "", p); plan = p + 0 } next }
line ~ /^    (not ok|ok)([ \t]|$)/ {
	res++
	if (line ~ /^    not ok/) { lf++; say(name ": " substr(line, 5)) }
	else if (line ~ /#[ \t]*[Ss][Kk][Ii][Pp]([^A-Za-z0-9]|$)/) { ls++; say(name ": " substr(line, 5) " (skip counts as failure)") }
	else lp++
	next
}
ktap && line ~ /^(not ok|ok) [0-9]+/ {
	if (!inprog) { n = line; sub(/^(not ok|ok) [0-9]+ /, "", n); sub(/ #.*/, "", n); name = n }
	finish(line); inprog = 0; name = "(between programs)"; next
}
END {
	if (inprog) finish("")
	if (ktap && topplan > programs) {
		say((topplan - programs) " of " topplan " programs never reported")
		failed += topplan - programs
	}
	if (result == "") {
		say("no \"syslet-init: result\" line: boot failed, kernel panicked or timed out")
		failed++
	} else if (result != "pass" && failed == 0) {
		say("init reported \"result " result "\"")
		failed++
	} else if (!ktap && result == "pass" && passed == 0) {
		passed++
	}
	if (splats) { say(splats " kernel splat line(s)"); failed++ }
	printf "%d passed, %d failed\n", passed, failed
	exit (failed == 0 && passed > 0) ? 0 : 1
}
' "$log"
