#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# test-judge.sh - self-test of qemu/judge.sh and qemu/summarize.sh on fake
# console logs (no QEMU needed).
#
# Usage: qemu/test-judge.sh
# Prints one KTAP line per case, then "N passed, N failed"; exit 0 if all
# cases pass.
set -euo pipefail

here=$(cd "$(dirname -- "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass=0 fail=0 n=0
# check NAME WANT_EXIT WANT_LAST_LINE CMD...: run CMD, compare exit + last line.
check() {
	local name=$1 want_rc=$2 want_line=$3 rc=0 out last
	shift 3
	out=$("$@" 2>&1) || rc=$?
	last=$(tail -n 1 <<<"$out")
	n=$((n + 1))
	if [[ $rc == "$want_rc" && $last == "$want_line" ]]; then
		echo "ok $n $name"
		pass=$((pass + 1))
	else
		echo "not ok $n $name"
		echo "# want exit $want_rc, '$want_line'; got exit $rc, '$last'; output:"
		while IFS= read -r l; do echo "#   $l"; done <<<"$out"
		fail=$((fail + 1))
	fi
}

# Fake pieces of a console log, as initramfs/init prints them.
boot() {
	cat <<'L'
[    0.000000] Linux version 6.12.0 (fake)
[    1.101231] Run /init as init process
syslet-init: starting
# syslet-init: mode test, timeout 600s
L
}
prog_pass() { # K M NAME
	cat <<L
# syslet-init: [$1/$2] $3: /bin/$3
    TAP version 13
    1..2
    # Starting 2 tests from 1 test cases.
    ok 1 $3.first
    ok 2 $3.second
ok $1 $3
# syslet-init: $3 took 0.10s
L
}
result() { # pass|fail
	echo "# totals: (fake)"
	echo "syslet-init: result $1"
	echo "# syslet-init: powering off"
	echo "[    9.000000] reboot: Power down"
}
log() { # NAME: writes stdin to $tmp/NAME.log, prints the path
	cat >"$tmp/$1.log"
	echo "$tmp/$1.log"
}
J=("$here/judge.sh")

f=$({
	boot
	printf 'KTAP version 1\n1..2\n'
	prog_pass 1 2 alpha
	prog_pass 2 2 beta
	result pass
} | log all-pass)
check "all pass" 0 "4 passed, 0 failed" "${J[@]}" "$f"

check "all pass, CRLF console" 0 "4 passed, 0 failed" \
	"${J[@]}" "$(sed 's/$/\r/' "$f" | log crlf)"

check "all pass, a kernel message on the header line" 0 "4 passed, 0 failed" \
	"${J[@]}" "$(sed 's/^KTAP version 1$/KTAP version 1[    2.156051] clocksource: tsc: mask: 0xff/' "$f" | log header-printk)"

check "all pass, no result line" 1 "4 passed, 1 failed" \
	"${J[@]}" "$(grep -v 'syslet-init: result' "$f" | log no-result)"

check "empty log" 1 "0 passed, 1 failed" "${J[@]}" "$(log empty </dev/null)"

check "unreadable log" 2 "0 passed, 1 failed" "${J[@]}" "$tmp/does-not-exist.log"

f=$({
	boot
	printf 'KTAP version 1\n1..2\n'
	prog_pass 1 2 alpha
	cat <<'L'
# syslet-init: [2/2] beta: /bin/beta
    TAP version 13
    1..2
    ok 1 beta.first
    # beta.second: expected 1, got 2
    not ok 2 beta.second
not ok 2 beta # exit status 1; 1 failed
L
	result fail
} | log one-fail)
check "one leaf fails" 1 "3 passed, 1 failed" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..1\n'
	prog_pass 1 1 alpha
	echo '[    5.100000] ------------[ cut here ]------------'
	echo '[    5.100001] WARNING: CPU: 1 PID: 42 at kernel/syslet.c:100 syslet_run+0x1/0x2'
	echo '[    5.100002] Call Trace:'
	echo '[    5.100003]  <TASK>'
	result pass
} | log splat)
check "kernel splat" 1 "2 passed, 1 failed" "${J[@]}" "$f"

for s in 'BUG: KASAN: slab-use-after-free in syslet_exec+0x10/0x20' \
	'BUG: sleeping function called from invalid context at mm/slub.c:4137' \
	'WARNING: possible circular locking dependency detected' \
	'INFO: task syslet-test:77 blocked for more than 120 seconds.' \
	'Oops: general protection fault, probably for non-canonical address' \
	'UBSAN: shift-out-of-bounds in kernel/syslet.c:12:3' \
	'rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:' \
	'Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b'; do
	check "splat: ${s:0:40}" 1 "2 passed, 1 failed" "${J[@]}" "$({
		boot
		printf 'KTAP version 1\n1..1\n'
		prog_pass 1 1 alpha
		echo "[    6.000000] $s"
		result pass
	} | log splat-one)"
done

# An OOM kill prints the stack of the task that ran out of memory: that
# "Call Trace:" is no splat (even with a spare in it, or with the lines a
# real report puts between), nor an allocation failure of the victim's
# PID soon after it (page or vmalloc); one of another task (thread 91),
# of the victim's PID 900 s later (reused), a second dump, a BUG, a victim
# no hog chose (oom_score_adj 0) or a spare made for the victim is.
# oom [ADJ [FRAME [NOISE]]]: the report, with the oom_score_adj of the
# victim (1000), FRAME in its stack, and lines before the stack.
oom() {
	echo '[    7.000000] syslet-fuzz invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=2, oom_score_adj=1000'
	if [[ -n ${3:-} ]]; then
		echo '[    7.000000] COMPACTION is disabled!!!'
		echo '[    7.000000] cgroup: fork rejected by pids controller in /fuzz-6810'
	fi
	echo '[    7.000001] CPU: 0 UID: 0 PID: 95 Comm: syslet-fuzz Tainted: G        W          6.12.118+ #1'
	if [[ -n ${3:-} ]]; then
		echo '[    7.000001] Tainted: [W]=WARN'
		echo '[    7.000001] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3'
	fi
	echo '[    7.000002] Call Trace:'
	echo '[    7.000003]  <TASK>'
	echo '[    7.000004]  dump_stack_lvl+0x4b/0x70'
	[[ -z ${2:-} ]] || echo "[    7.000004]  $2"
	echo '[    7.000005]  </TASK>'
	echo '[    7.000006] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=syslet-fuzz,pid=90,uid=0'
	echo "[    7.000007] Out of memory: Killed process 90 (syslet-fuzz) total-vm:900000kB, anon-rss:800000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1800kB oom_score_adj:${1:-1000}"
}
# alloc_fail PID [FRAME [SECONDS [vmalloc]]]: an allocation failure of
# task PID at time SECONDS (7), with its stack dump (and FRAME in it).
alloc_fail() {
	local t=${3:-7} what='page allocation failure: order:0'
	[[ ${4:-} != vmalloc ]] || what='vmalloc error: size 16384, vm_struct allocation failed'
	echo "[ $(printf %4d "$t").100000] syslet-fuzz: $what, mode:0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), nodemask=(null)"
	echo "[ $(printf %4d "$t").100001] CPU: 1 UID: 0 PID: $1 Comm: syslet-fuzz Not tainted 6.12.118+ #1"
	echo "[ $(printf %4d "$t").100002] Call Trace:"
	echo "[ $(printf %4d "$t").100003]  <TASK>"
	echo "[ $(printf %4d "$t").100004]  warn_alloc+0xef/0x168"
	[[ -z ${2:-} ]] || echo "[ $(printf %4d "$t").100005]  $2"
	echo "[ $(printf %4d "$t").100006]  </TASK>"
}
spare='syslet_create_spare+0x2a/0x1c0'
for c in '|0' 'Call Trace:|1' 'BUG: KASAN: slab-use-after-free in out_of_memory+0x1/0x2|1' \
	'victim 90|0' 'victim 90, vmalloc|0' 'victim 90 at 900 s|1' 'thread 91|1' \
	'victim then Call Trace:|1' 'no report, then Call Trace:|1' 'adj 0|1' \
	'spare for 90|1' 'spare for 90, vmalloc|1' 'report with a spare|0' 'noisy report|0'; do
	IFS='|' read -r extra rc <<<"$c"
	want="2 passed, 0 failed"
	((rc == 0)) || want="2 passed, 1 failed"
	check "OOM report${extra:+ then ${extra:0:22}}" "$rc" "$want" "${J[@]}" "$({
		boot
		printf 'KTAP version 1\n1..1\n'
		prog_pass 1 1 alpha
		case $extra in
		adj*) oom 0 ;;
		no\ report*)
			echo '[    7.000000] syslet-fuzz invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=1000'
			for i in 1 2 3 4 5; do echo "[    7.00000$i] Mem-Info: line $i"; done
			;;
		report\ with*) oom 1000 "$spare" ;;
		noisy*) oom 1000 '' noise ;;
		*) oom ;;
		esac
		case $extra in
		'' | adj* | report\ with* | noisy*) ;;
		'victim 90') alloc_fail 90 ;;
		'victim 90, vmalloc') alloc_fail 90 '' 8 vmalloc ;;
		'victim 90 at 900 s') alloc_fail 90 '' 900 ;;
		victim\ then*)
			alloc_fail 90
			echo '[    8.000000] Call Trace:'
			;;
		no\ report*) echo '[    8.000000] Call Trace:' ;;
		thread*) alloc_fail 91 ;;
		'spare for 90') alloc_fail 90 "$spare" ;;
		'spare for 90, vmalloc') alloc_fail 90 "$spare" 8 vmalloc ;;
		*) echo "[    8.000000] $extra" ;;
		esac
		result pass
	} | log oom)"
done

# KCSAN: a report whose title JUDGE_KNOWN lists (the unpatched kernel
# gives it too) is no splat; one of the same function racing with another
# is, and so is any report without JUDGE_KNOWN.
printf '# a comment\ndata-race in do_nanosleep / hrtimer_wakeup\ndata-race in smp_call_function_many_cond+\n' >"$tmp/known.txt"
kcsan_log() { # TITLE
	boot
	printf 'KTAP version 1\n1..1\n'
	prog_pass 1 1 alpha
	echo '[    5.000000] =================================================================='
	echo "[    5.000001] BUG: KCSAN: $1"
	echo '[    5.000002] read to 0xffff888003f1c0a8 of 8 bytes by task 90 on cpu 1:'
	echo '[    5.000003]  do_nanosleep+0x8f/0x1e0'
	result pass
}
for c in 'known|data-race in do_nanosleep / hrtimer_wakeup|0' \
	'known, unknown origin|data-race in smp_call_function_many_cond+0x9a/0x3c0|0' \
	'same function, other pair|data-race in do_nanosleep / syslet_wake|1' \
	'a longer name|data-race in do_nanosleep / hrtimer_wakeup_syslet|1' \
	'known title, no JUDGE_KNOWN|data-race in do_nanosleep / hrtimer_wakeup|2'; do
	IFS='|' read -r what title rc <<<"$c"
	want="2 passed, 0 failed"
	((rc == 0)) || want="2 passed, 1 failed"
	f=$(kcsan_log "$title" | log kcsan)
	if ((rc == 2)); then
		check "KCSAN $what" 1 "$want" "${J[@]}" "$f"
	else
		check "KCSAN $what" "$rc" "$want" env JUDGE_KNOWN="$tmp/known.txt" "${J[@]}" "$f"
	fi
done

# The judge prints only its own lines and the summary (an awk pattern
# without an action would echo the console line).
f=$(kcsan_log 'data-race in do_nanosleep / hrtimer_wakeup' | log kcsan-quiet)
check "KCSAN known report: no console line echoed" 0 "0" \
	sh -c 'JUDGE_KNOWN="$1" "$2" "$3" | grep -cv "^judge: \|passed, .* failed$"; exit 0' sh "$tmp/known.txt" "${J[0]}" "$f"

# A known report printed in the middle of init's result line: the
# result still counts.
f=$({
	boot
	printf 'KTAP version 1\n1..1\n'
	prog_pass 1 1 alpha
	echo '# totals: (fake)'
	echo 'syslet-init: result pass[    9.000000] BUG: KCSAN: data-race in do_nanosleep / hrtimer_wakeup'
	echo '[    9.100000] reboot: Power down'
} | log kcsan-result)
check "KCSAN known title inside the result line" 0 "2 passed, 0 failed" env JUDGE_KNOWN="$tmp/known.txt" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..1\n'
	cat <<'L'
# syslet-init: [1/1] alpha: /bin/alpha
    TAP version 13
    1..1
    # WARNING: this is user space talking, not a kernel splat
    # BUG: neither is this
    ok 1 alpha.first
ok 1 alpha
L
	result pass
} | log user-warning)
check "WARNING in program output is no splat" 0 "1 passed, 0 failed" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..1\n'
	cat <<'L'
# syslet-init: [1/1] alpha: /bin/alpha
    TAP version 13
    1..1
    ok 1 alpha.fi[    3.141592] WARNING: CPU: 1 PID: 42 at kernel/syslet.c:1
ok 1 alpha
L
	result pass
} | log splat-in-program-line)
check "kernel splat inside a program line" 1 "1 passed, 1 failed" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..3\n'
	prog_pass 1 3 alpha
	cat <<'L'
# syslet-init: [2/3] beta: /bin/beta
    TAP version 13
    1..4
    ok 1 beta.first
    ok 2 beta.second
not ok 2 beta # 2 of 4 planned results missing
L
	result fail
} | log missing)
check "missing results vs plans" 1 "4 passed, 3 failed" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..1\n'
	cat <<'L'
# syslet-init: [1/1] alpha: /bin/alpha
    TAP version 13
    1..2
    ok 1 alpha.first
    ok 2 alpha.second # SKIP syslets not supported
not ok 1 alpha # 1 skipped
L
	result fail
} | log skip)
check "skip counts as failure" 1 "1 passed, 1 failed" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..2\n'
	echo '# syslet-init: [1/2] gone: /bin/gone'
	echo 'not ok 1 gone # failed to start: /bin/gone: No such file or directory (os error 2); no results'
	echo 'not ok 2 lonely # bad test line: expected name /path/to/prog [args...]'
	result fail
} | log no-leaves)
check "top-level not ok without leaves" 1 "0 passed, 2 failed" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..1\n'
	cat <<'L'
# syslet-init: [1/1] alpha: /bin/alpha
    TAP version 13
    ok 1 alpha.first
not ok 1 alpha # timeout after 600s; killed by signal 9
L
	result fail
} | log timeout)
check "timeout after passing leaves" 1 "1 passed, 1 failed" "${J[@]}" "$f"

f=$({
	boot
	printf 'KTAP version 1\n1..2\n'
	cat <<'L'
# syslet-init: [1/2] alpha: /bin/alpha
    TAP version 13
    1..3
    ok 1 alpha.first
[    7.000000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009
[    7.000001] Rebooting in -1 seconds..
L
} | log panic)
# 1 pass; fails: 2 missing leaves, alpha unfinished, beta never ran,
# no result line, the splat.
check "kernel panic mid-run" 1 "1 passed, 6 failed" "${J[@]}" "$f"

f=$({
	boot
	echo 'syslet-init: error: /etc/syslet/tests: No such file or directory (os error 2)'
	printf 'KTAP version 1\n1..0\n'
	result fail
} | log init-error)
check "init error" 1 "0 passed, 1 failed" "${J[@]}" "$f"

f=$({
	boot
	echo '# syslet-init: running in /work: ./demo'
	echo 'demo output'
	echo 'syslet-init: exit status 0 after 1.00s'
	result pass
} | log demo)
check "demo log without KTAP" 0 "1 passed, 0 failed" "${J[@]}" "$f"

check "demo log, result fail" 1 "0 passed, 1 failed" \
	"${J[@]}" "$(sed 's/result pass/result fail/' "$f" | log demo-fail)"

# summarize.sh
S=("$here/summarize.sh")
echo "4 passed, 0 failed" >"$tmp/a.res"
printf 'judge: x: detail\njudge: 2 passed, 0 failed\n' >"$tmp/b.res"
echo "1 passed, 2 failed" >"$tmp/c.res"
echo "0 passed, 0 failed" >"$tmp/d.res"
echo "no verdict here" >"$tmp/e.res"
check "summarize: all green" 0 "6 passed, 0 failed" "${S[@]}" "$tmp/a.res" "$tmp/b.res"
check "summarize: one red" 1 "7 passed, 2 failed" "${S[@]}" "$tmp/a.res" "$tmp/b.res" "$tmp/c.res"
check "summarize: nothing ran" 1 "4 passed, 1 failed" "${S[@]}" "$tmp/a.res" "$tmp/d.res"
check "summarize: no verdict, missing file" 1 "4 passed, 2 failed" \
	"${S[@]}" "$tmp/a.res" "$tmp/e.res" "$tmp/nope.res"

echo "1..$n"
echo "$pass passed, $fail failed"
((fail == 0))
