#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# run-qemu.sh - boot a kernel with an initramfs in QEMU; the serial
# console is streamed live and saved to LOGFILE, under a wall-clock limit.
#
# Usage:
#   qemu/run-qemu.sh -k BZIMAGE -i INITRD -l LOGFILE [-t TIMEOUT_SECONDS]
#                    [-a "EXTRA APPEND"] [-s SMP] [-m MEM] [-R]
#
#   -t  wall-clock limit in seconds (default 900); QEMU is killed after it
#   -a  appended to "console=ttyS0 panic=-1", e.g. "syslet.mode=test"
#   -s  virtual CPUs (default 2)       -m  memory (default 1G)
#   -R  raw: exit with QEMU's own code, do not look for init's result line
#
# Environment:
#   QEMU_ACCEL  tcg (default; -cpu max, multi-threaded TCG) or kvm (-cpu host)
#   QEMU_ICOUNT with tcg: run single-threaded TCG with "-icount $QEMU_ICOUNT"
#               (e.g. "shift=0,sleep=off": guest time counts instructions,
#               1 ns each, and skips idle time; QEMU refuses icount with
#               multi-threaded TCG); empty or unset: no icount
#   QEMU        the binary (default qemu-system-x86_64)
#   QEMU_EXTRA  extra QEMU arguments, split on whitespace (e.g. "-d guest_errors")
#
# Exit-code map (QEMU's isa-debug-exit device exits with (v << 1) | 1 for
# a value v written to port 0xf4; initramfs/init writes 1, 2 or 3):
#     0  the guest powered off and init printed "syslet-init: result pass"
#     1  QEMU itself failed (bad option, no KVM, missing firmware, ...)
#     2  QEMU exited 0 without that pass line: a kernel panic (panic=-1
#        reboots and -no-reboot turns the reboot into exit 0), init never
#        ran, or init failed and could not reach isa-debug-exit (not with -R)
#     3  init: a test failed / the command exited non-zero   (v = 1)
#     5  init: init error (bad cmdline, missing file, mount) (v = 2)
#     7  init: a program was killed by syslet.timeout        (v = 3)
#    64  usage error of this script
#   124  the wall-clock limit (-t) expired and QEMU was killed
# Other odd codes are (v << 1) | 1 for some other value v.
#
# The console also ends up in LOGFILE; judge it with qemu/judge.sh.
# The terminal: with -nographic, Ctrl-A X quits QEMU, Ctrl-A C the monitor.
set -euo pipefail

usage() {
	sed -n '7,9s/^# \{0,1\}//p' "$0" >&2
	exit 64
}

kernel='' initrd='' log='' timeout_s=900 append_extra='' smp=2 mem=1G raw=0
while getopts "k:i:l:t:a:s:m:Rh" opt; do
	case $opt in
	k) kernel=$OPTARG ;;
	i) initrd=$OPTARG ;;
	l) log=$OPTARG ;;
	t) timeout_s=$OPTARG ;;
	a) append_extra=$OPTARG ;;
	s) smp=$OPTARG ;;
	m) mem=$OPTARG ;;
	R) raw=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# == 0)) || usage
[[ -n $kernel && -n $initrd && -n $log ]] || usage
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || {
	echo "run-qemu.sh: -t wants a positive number of seconds" >&2
	exit 64
}
for f in "$kernel" "$initrd"; do
	[[ -r $f ]] || {
		echo "run-qemu.sh: cannot read $f" >&2
		exit 64
	}
done

qemu=${QEMU:-qemu-system-x86_64}
icount=${QEMU_ICOUNT:-}
# shellcheck disable=SC2054 # commas inside QEMU option values are intended.
case ${QEMU_ACCEL:-tcg} in
tcg)
	if [[ -n $icount ]]; then
		accel=(-accel tcg,thread=single -cpu max -icount "$icount")
	else
		accel=(-accel tcg,thread=multi -cpu max)
	fi
	;;
kvm)
	[[ -z $icount ]] || {
		echo "run-qemu.sh: QEMU_ICOUNT needs QEMU_ACCEL=tcg" >&2
		exit 64
	}
	accel=(-accel kvm -cpu host)
	;;
*)
	echo "run-qemu.sh: QEMU_ACCEL must be tcg or kvm" >&2
	exit 64
	;;
esac
# shellcheck disable=SC2206 # QEMU_EXTRA is split on whitespace on purpose.
extra=(${QEMU_EXTRA:-})

append="console=ttyS0 panic=-1${append_extra:+ $append_extra}"
# An even number of vCPUs comes as cores of two SMT threads each: core
# scheduling (PR_SCHED_CORE, whose cookie a handoff moves) needs siblings.
topo=$smp
((smp < 2 || smp % 2)) || topo="$smp,sockets=1,cores=$((smp / 2)),threads=2"
# shellcheck disable=SC2054 # commas inside QEMU option values are intended.
cmd=(
	"$qemu" -no-user-config
	"${accel[@]}"
	-smp "$topo" -m "$mem"
	-nographic -no-reboot -vga none -nic none
	-device isa-debug-exit,iobase=0xf4,iosize=0x04
	-kernel "$kernel" -initrd "$initrd"
	-append "$append"
	"${extra[@]}"
)

mkdir -p "$(dirname -- "$log")"
echo "[qemu] booting $kernel with $initrd (${QEMU_ACCEL:-tcg}${icount:+ icount $icount}, smp $smp, $mem, limit ${timeout_s}s), console log: $log"
shown=''
for a in "${cmd[@]}"; do
	if [[ $a =~ ^[A-Za-z0-9_./=:,+@%-]+$ ]]; then shown+=" $a"; else shown+=" '${a//\'/\'\\\'\'}'"; fi
done
echo "[qemu] command:$shown"

# QEMU puts a terminal on stdin into raw mode; put it back even if killed.
stty_saved=
if [[ -t 0 ]]; then
	stty_saved=$(stty -g)
fi
restore_tty() {
	if [[ -n $stty_saved ]]; then stty "$stty_saved" 2>/dev/null || true; fi
}
trap restore_tty EXIT

start=$SECONDS
# --foreground keeps QEMU in the terminal's process group (otherwise it
# stops on SIGTTIN when reading a terminal); -k sends SIGKILL 10 s after
# the SIGTERM if QEMU is still there.
set +e
timeout --foreground -k 10 "$timeout_s" "${cmd[@]}" 2>&1 | tee -- "$log"
codes=("${PIPESTATUS[@]}")
set -e
rc=${codes[0]}
elapsed=$((SECONDS - start))
restore_tty

if ((rc == 124 || rc == 137)); then
	echo "[qemu] timed out after ${timeout_s}s: QEMU killed"
	rc=124
elif ((rc == 0 && !raw)); then
	# The last result line wins (a log holds one boot).
	result=$(tr -d '\r' <"$log" | grep -o 'syslet-init: result [a-z]*' | tail -n 1 || true)
	if [[ $result != "syslet-init: result pass" ]]; then
		echo "[qemu] QEMU exited 0 but init did not print 'syslet-init: result pass'" \
			"(kernel panic? init not run? isa-debug-exit unreachable?)"
		rc=2
	fi
fi
echo "[qemu] finished in ${elapsed}s, exit code $rc"
exit "$rc"
