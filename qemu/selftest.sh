#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# selftest.sh - boot-test the harness itself (init, cpio tools, run-qemu.sh,
# judge.sh) with a fake test program, on any kernel that boots an
# initramfs (ACPI for power off, CONFIG_X86_IOPL_IOPERM for isa-debug-exit).
#
# Usage: qemu/selftest.sh -k BZIMAGE -I INIT [-o OUTDIR]
#   INIT    the static syslet-init binary (initramfs/init)
#   OUTDIR  scratch directory (default build/qemu-selftest)
# Environment: GEN_INIT_CPIO (see initramfs/mkcpio.sh), CC (default gcc),
# QEMU_ACCEL and friends (see run-qemu.sh).
#
# Each case boots once and checks run-qemu.sh's exit code, the judge's
# verdict line and some console lines. Prints KTAP, then
# "N passed, N failed"; exit 0 if every case passed.
set -euo pipefail

here=$(cd "$(dirname -- "$0")" && pwd)
top=$(cd "$here/.." && pwd)
usage() {
	sed -n '8,10s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
kernel='' init='' out=$top/build/qemu-selftest
while getopts "k:I:o:h" opt; do
	case $opt in
	k) kernel=$OPTARG ;;
	I) init=$OPTARG ;;
	o) out=$OPTARG ;;
	*) usage ;;
	esac
done
[[ -n $kernel && -n $init ]] || usage
mkdir -p "$out"
out=$(cd "$out" && pwd)
fake=$out/ktap-fake
"${CC:-gcc}" -static -O2 -Wall -o "$fake" "$here/selftest/ktap-fake.c"
# Not executable: its exec fails, for the "failed to start" case.
printf 'not a program\n' >"$out/nope"
chmod 0644 "$out/nope"

n=0 pass=0 fail=0
# boot NAME WANT_RC WANT_JUDGE APPEND TIMEOUT MODE ARGS... ; then greps.
# MODE/ARGS go to initramfs/mkextra.sh; "panic" packs the fake as /init.
# Remaining expectations: the global array want_lines (console lines) and
# want_status (guest-status.sh's exit code; empty: not checked).
boot() {
	local name=$1 want_rc=$2 want_judge=$3 append=$4 limit=$5 mode=$6 rc=0 jrc=0 verdict why=''
	shift 6
	local dir=$out/$name
	rm -rf "$dir" && mkdir -p "$dir"
	if [[ $mode == panic ]]; then
		printf 'file /init %s 0755 0 0\n' "$fake" >"$dir/extra.list"
		sed '/^file \/init /d' "$top/initramfs/base.list" >"$dir/base.list"
		"$top/initramfs/mkcpio.sh" "$dir/initrd.cpio" "$dir/base.list" "$dir/extra.list"
	else
		"$top/initramfs/mkextra.sh" "$mode" "$dir/extra" "$@"
		"$top/initramfs/mkcpio.sh" -D INIT="$init" "$dir/initrd.cpio" \
			"$top/initramfs/base.list" "$dir/extra/extra.list"
	fi
	"$here/run-qemu.sh" -k "$kernel" -i "$dir/initrd.cpio" -l "$dir/console.log" \
		-t "$limit" -a "$append" </dev/null >"$dir/run.out" 2>&1 || rc=$?
	"$here/judge.sh" "$dir/console.log" "$name" >"$dir/judge.out" 2>&1 || jrc=$?
	verdict=$(tail -n 1 "$dir/judge.out")
	[[ $rc == "$want_rc" ]] || why+=" run-qemu exit $rc (want $want_rc);"
	if [[ $rc != "$want_rc" ]] && grep -q 'isa-debug-exit unreachable' "$dir/console.log"; then
		why+=" init could not reach isa-debug-exit: kernel needs CONFIG_X86_IOPL_IOPERM=y;"
	fi
	[[ $verdict == "$want_judge" ]] || why+=" judge '$verdict' (want '$want_judge');"
	if [[ $want_judge == *" 0 failed" && $want_judge != "0 passed"* ]]; then
		((jrc == 0)) || why+=" judge exit $jrc (want 0);"
	else
		((jrc == 1)) || why+=" judge exit $jrc (want 1);"
	fi
	if [[ -n ${want_status-} ]]; then
		local src=0
		"$here/guest-status.sh" "$dir/console.log" >"$dir/status.out" 2>&1 || src=$?
		[[ $src == "$want_status" ]] || why+=" guest-status exit $src (want $want_status);"
	fi
	local l
	for l in "${want_lines[@]}"; do
		tr -d '\r' <"$dir/console.log" | grep -qF -- "$l" || why+=" no line '$l';"
	done
	n=$((n + 1))
	if [[ -z $why ]]; then
		pass=$((pass + 1))
		echo "ok $n $name"
	else
		fail=$((fail + 1))
		echo "not ok $n $name #$why"
		echo "# see $dir/{run.out,console.log,judge.out}; last console lines:"
		tr -d '\r' <"$dir/console.log" | tail -n 15 | while IFS= read -r l; do echo "#   $l"; done
	fi
	echo "# $name: $(grep -o 'finished in .*' "$dir/run.out" || echo '?')"
}

echo "KTAP version 1"
echo "1..9"

want_lines=("    ok 2 fake.second" "ok 2 two" "syslet-init: result pass" "Brought up 1 node, 2 CPUs")
boot all-pass 0 "4 passed, 0 failed" "syslet.mode=test" 120 \
	test "one=$fake pass" "two=$fake pass"

want_lines=("not ok 1 fail # exit status 1; 1 failed" "not ok 3 short # 2 of 3 planned results missing"
	"not ok 4 crash # killed by signal 11" "not ok 5 nope # failed to start" "syslet-init: result fail")
boot failures 3 "4 passed, 6 failed" "syslet.mode=test" 120 \
	test "fail=$fake fail" "skip=$fake skip" "short=$fake short" "crash=$fake crash" \
	"nope=$out/nope"

want_lines=("not ok 1 hang # timeout after 3s; killed by signal 9" "syslet-init: result fail")
boot per-test-timeout 7 "1 passed, 1 failed" "syslet.mode=test syslet.timeout=3" 120 \
	test "hang=$fake hang"

want_status=0
want_lines=("arg[0]=<a b>" "arg[1]=<c>" "cwd=/work" "syslet-init: exit status 0")
boot run-mode 0 "1 passed, 0 failed" "syslet.mode=run" 120 \
	run "./ktap-fake echo 'a b' c" "$fake"

# No syslet.mode=: init picks run mode because /etc/syslet/cmd exists.
want_status=4
want_lines=("# syslet-init: mode run" "syslet-init: exit status 4" "syslet-init: result fail")
boot run-exit-status 3 "0 passed, 1 failed" "" 120 \
	run "ktap-fake exit 4" "$fake"

want_status=''
want_lines=("# syslet-init: mode demo" "arg[0]=<x>" "cwd=/work" "syslet-init: result pass")
boot demo-mode 0 "1 passed, 0 failed" "syslet.mode=demo" 120 \
	demo "/work/ktap-fake echo x" "$fake"

want_lines=("syslet.mode=bogus: unknown mode" "syslet-init: result fail")
boot init-error 5 "0 passed, 1 failed" "syslet.mode=bogus" 120 \
	run "./ktap-fake echo" "$fake"

want_status=125
want_lines=("# hanging now")
boot wall-clock-timeout 124 "1 passed, 3 failed" "syslet.mode=test syslet.timeout=0" 20 \
	test "hang=$fake hang"

want_status=''
want_lines=("Attempted to kill init")
boot kernel-panic 2 "0 passed, 2 failed" "" 120 panic

echo "$pass passed, $fail failed"
((fail == 0))
