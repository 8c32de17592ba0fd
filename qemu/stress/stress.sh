#!/bin/sh
# qemu/stress/stress.sh - run in the guest by `make stress` (busybox sh):
# Debian's stress-ng, with the stressors of what the series touches, beside
# syslet-fuzz (on a kernel with syslets), then Debian's trinity as nobody.
# Prints "stress: NAME exit N" per program and exits 1 if one failed.
#
# Usage: stress.sh SECONDS SEED fuzz|nofuzz
dur=$1 seed=$2 mode=$3
fail=0 fuzz_pid=

cd /work || exit 2
if [ "$mode" = fuzz ]; then
	./syslet-fuzz --seed "$seed" --duration "$dur" --threads 2 --procs 2 \
		--hang 60 > /tmp/fuzz.out 2>&1 &
	fuzz_pid=$!
fi

# No syslets: copy-on-write TLB flushes while threads move between CPUs,
# for the KCSAN report fuzz/kcsan-known.txt lists (a third of the time).
./tlb-race $((dur / 3 + 1))
echo "stress: tlb-race exit $?"

# fork, clone, signal, futex, pthread, seccomp and rseq: the paths the
# handoff changes.  --verify checks each stressor's own results.  glibc
# registers rseq for every thread unless told not to, and the rseq
# stressor registers its own.
GLIBC_TUNABLES=glibc.pthread.rseq=0 /usr/bin/stress-ng --fork 2 --clone 2 --signal 2 --futex 2 --pthread 2 \
	--seccomp 2 --rseq 2 --timeout "${dur}s" --verify --metrics-brief \
	--temp-path /tmp
rc=$?
echo "stress: stress-ng exit $rc"
[ $rc = 0 ] || fail=1

if [ -n "$fuzz_pid" ]; then
	wait "$fuzz_pid"
	rc=$?
	grep -a '^fuzz: \(seed=\|PASS\|FAIL\|LOST\|HANG\|CRASH\|WRONG\|UNEXPECTED\)' /tmp/fuzz.out
	echo "stress: syslet-fuzz exit $rc"
	[ $rc = 0 ] || fail=1
fi

# trinity: random system calls with random arguments from 2 children, as
# nobody (-X), for at most SECONDS (it stops after -N calls otherwise);
# not mount(), whose deprecated flags log "WARNING:" lines that are no
# splats, and without socket descriptors: trinity 1.9 crashed once
# (SIGSEGV in trinity-main) building its socket cache (fuzz/README.md).
mkdir -p /tmp/trinity && chmod 1777 /tmp/trinity && cd /tmp/trinity || exit 2
timeout -s KILL "$dur" /usr/bin/trinity --dangerous -X -q -C 2 -N 200000 \
	-x mount --disable-fds=sockets > /tmp/trinity.out 2>&1
rc=$?
tail -n 5 /tmp/trinity.out
# 137: stopped by the time limit, which is the normal end under TCG
[ $rc = 137 ] && rc=0
echo "stress: trinity exit $rc"
[ $rc = 0 ] || fail=1

echo "stress: result $([ $fail = 0 ] && echo pass || echo fail)"
exit $fail
