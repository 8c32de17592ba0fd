#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# itrace.sh - count the guest instructions of one code path, exactly.
#
# Boots KERNEL with INITRD under QEMU -icount on one vCPU with the gdb stub,
# waits until BREAK (a kernel function) has been hit SKIP times, then
# single-steps the vCPU until the stop condition, recording every
# instruction pointer, and prints the instructions per function (user
# space per function too with -x, else as one line) and the sequence of
# functions in OUT.seq.  Interrupts and timers stay masked while stepping
# (QEMU's default), so a path that waits for a device stops at the idle
# loop: trace the two halves separately (e.g. -b null_cmd_timer_expired
# for a null_blk completion).
#
# Usage:
#   qemu/itrace.sh -k BZIMAGE -i INITRD -b BREAK [-s SKIP] [-u | -e END]
#                  [-n MAXSTEPS] [-x USERPROG] [-o OUT] [-w SECONDS]
#
#   -u        stop when the vCPU returns to user space (default)
#   -e END    stop when it reaches kernel function END (e.g. default_idle)
#   -n        at most this many instructions (default 200000)
#   -x        a static, non-PIE user program to name user functions
#             (RUSTFLAGS="-C relocation-model=static" for Rust)
#   -o        output prefix (default build/itrace/trace): OUT.pcs, OUT.seq
#   -w        seconds to let the guest boot and warm up (default 25)
#
# The kernel must be booted with nokaslr (added here); System.map and
# vmlinux are taken from the bzImage's build directory.  Needs gdb.
set -euo pipefail

usage() {
	sed -n '17,26s/^# \{0,1\}//p' "$0" >&2
	exit 64
}

kernel='' initrd='' brk='' skip=5 endf='' maxn=200000 uprog='' out='' wait_s=25
while getopts "k:i:b:s:ue:n:x:o:w:h" opt; do
	case $opt in
	k) kernel=$OPTARG ;;
	i) initrd=$OPTARG ;;
	b) brk=$OPTARG ;;
	s) skip=$OPTARG ;;
	u) endf='' ;;
	e) endf=$OPTARG ;;
	n) maxn=$OPTARG ;;
	x) uprog=$OPTARG ;;
	o) out=$OPTARG ;;
	w) wait_s=$OPTARG ;;
	*) usage ;;
	esac
done
[[ -n $kernel && -n $initrd && -n $brk ]] || usage
here=$(cd "$(dirname -- "$0")" && pwd)
kdir=$(cd "$(dirname -- "$kernel")/../../.." && pwd)
[[ -r $kdir/vmlinux && -r $kdir/System.map ]] || {
	echo "itrace.sh: no vmlinux/System.map in $kdir" >&2
	exit 64
}
command -v gdb >/dev/null || {
	echo "itrace.sh: needs gdb" >&2
	exit 64
}
out=${out:-$here/../build/itrace/trace}
mkdir -p "$(dirname -- "$out")"
port=$((20000 + RANDOM % 20000))

if [[ -n $endf ]]; then
	stop="if \$pc == $endf"
else
	# shellcheck disable=SC2016 # a gdb expression, not a shell one
	stop='if $pc < 0x800000000000'
fi
{
	echo "set pagination off"
	echo "set confirm off"
	echo "target remote :$port"
	echo "hbreak $brk"
	for ((k = 0; k < skip; k++)); do echo "continue"; done
	echo "delete"
	echo "set logging file $out.pcs"
	echo "set logging overwrite on"
	echo "set logging redirect on"
	echo "set logging enabled on"
	echo "set \$n = 0"
	echo "while \$n < $maxn"
	# shellcheck disable=SC2016 # gdb's $pc
	printf '%s\n' '  printf "%lx\n", $pc'
	echo "  stepi"
	echo "  set \$n = \$n + 1"
	echo "  $stop"
	echo "    set \$n = $((maxn + 1))"
	echo "  end"
	echo "end"
	echo "set logging enabled off"
	echo "kill"
	echo "quit"
} >"$out.gdb"

QEMU_ICOUNT=shift=0,sleep=off QEMU_EXTRA="-gdb tcp::$port" \
	"$here/run-qemu.sh" -s 1 -k "$kernel" -i "$initrd" -l "$out.console" \
	-t $((wait_s + 900)) -a "syslet.mode=run nokaslr" >/dev/null 2>&1 &
qpid=$!
sleep "$wait_s"
gdb -q -batch -x "$out.gdb" "$kdir/vmlinux" >"$out.gdb.log" 2>&1 || true
kill "$qpid" 2>/dev/null || true
wait "$qpid" 2>/dev/null || true
[[ -s $out.pcs ]] || {
	echo "itrace.sh: no trace (see $out.gdb.log and $out.console)" >&2
	exit 1
}
python3 "$here/itrace-summary.py" "$out.pcs" "$kdir/System.map" ${uprog:+"$uprog"}
