#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# bench.sh - run syslet-bench in one boot of the patched kernel and keep
# the console log, the raw CSV, the program's tables, the run's metadata
# and the plots in a new results directory (the host side of `make bench`).
#
# Usage: ci/bench.sh BZIMAGE SYSLET_BENCH [RESULTS [MODE [--] [ARG...]]]
#
#   BZIMAGE       the patched kernel (make kernel: build/kernel-normal/...)
#   SYSLET_BENCH  the static syslet-bench binary (copied to /work)
#   RESULTS       output root (default: results/ at the top of the repo;
#                 "" also means the default)
#   MODE          wall (default): multi-threaded TCG, guest time is host
#                 time, so host load shows in the figures;
#                 icount: single-threaded TCG with -icount (QEMU_ICOUNT,
#                 default shift=0,sleep=off): guest time counts guest
#                 instructions (1 ns each) and skips idle time, so the
#                 figures do not depend on the host's speed or load
#   ARG...        passed to syslet-bench (e.g. --smoke, --reps 3)
#
# Writes RESULTS/<UTC stamp>-<MODE>/: bench.log (console), bench.csv (the
# BENCH, rows without the prefix, warm-ups included), table.txt (what the
# program printed after its CSV, kernel messages removed), meta.txt (host,
# QEMU, mode, versions, command lines, outcome), medians.csv and the PNGs of
# bench/plot.sh; on success RESULTS/latest points to it (a symlink).
#
# Environment:
#   GEN_INIT_CPIO  the kernel's gen_init_cpio (default: build/tools/
#                  gen_init_cpio if present, else gen_init_cpio on PATH)
#   INIT           the static guest init (default: build/cargo/
#                  x86_64-unknown-linux-gnu/release/init)
#   BENCH_TIMEOUT  QEMU's wall-clock limit in seconds (default 7200)
#   BENCH_APPEND   more kernel parameters (e.g. "idle=halt")
#   BENCH_MEM      guest memory (default 2G: 10,000 reads in flight are
#                  10,000 blocked threads, and their spares)
#   QEMU_ACCEL, QEMU, QEMU_EXTRA, QEMU_ICOUNT: see qemu/run-qemu.sh
#
# Exit: 0 ok; 1 the guest run failed (boot, program exit status, timeout,
# kernel splat), no CSV was found, or plotting failed (what was found is
# still written); 2 usage.
set -euo pipefail

here=$(cd "$(dirname -- "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cmdline=$(printf '%q ' "$0" "$@")
cmdline=${cmdline% }

usage() {
	sed -n '8s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

(($# >= 2)) || usage
[[ $1 != -* ]] || usage
bzimage=$1 bin=$2
shift 2
root=$repo/results
if (($#)); then
	[[ -z $1 ]] || root=$1
	shift
fi
mode=wall
if (($#)); then
	[[ -z $1 ]] || mode=$1
	shift
fi
[[ ${1-} != -- ]] || shift
args=("$@")

case $mode in
wall) export QEMU_ICOUNT= ;;
icount)
	[[ ${QEMU_ACCEL:-tcg} == tcg ]] || die "icount mode needs QEMU_ACCEL=tcg (is ${QEMU_ACCEL})"
	export QEMU_ICOUNT=${QEMU_ICOUNT:-shift=0,sleep=off}
	;;
*)
	echo "bench.sh: MODE must be wall or icount, not '$mode'" >&2
	usage
	;;
esac
[[ -r $bzimage ]] || die "cannot read the kernel $bzimage"
[[ -f $bin && -x $bin ]] || die "not an executable file: $bin"
name=$(basename -- "$bin")
[[ $name =~ ^[A-Za-z0-9_.+-]+$ && $(realpath -- "$bin") != *[[:space:]]* ]] ||
	die "the binary's path may not contain whitespace or odd characters: $bin"
if command -v file >/dev/null && ! file -L "$bin" | grep -Eq 'statically linked|static-pie'; then
	echo "bench.sh: warning: $bin does not look static; the guest has no libc" >&2
fi
# init splits the command on whitespace (no shell): arguments cannot hold
# whitespace or quotes.
run_cmd="./$name"
for a in "${args[@]}"; do
	[[ -n $a && $a != *[[:space:]\'\"]* ]] || die "argument '$a': empty, or has whitespace or quotes"
	run_cmd+=" $a"
done
timeout_s=${BENCH_TIMEOUT:-7200}
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive number of seconds"

if [[ -z ${GEN_INIT_CPIO:-} && -x $repo/build/tools/gen_init_cpio ]]; then
	export GEN_INIT_CPIO=$repo/build/tools/gen_init_cpio
fi
export INIT=${INIT:-$repo/build/cargo/x86_64-unknown-linux-gnu/release/init}
[[ -r $INIT ]] || die "no guest init at $INIT (set INIT, or make guest-programs)"

# The run directory: a new one even for two runs in the same second.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$root"
run=$stamp-$mode
n=1
while ! mkdir "$root/$run" 2>/dev/null; do
	n=$((n + 1))
	run=$stamp-$mode-$n
	((n < 100)) || die "cannot create a run directory in $root"
done
dir=$root/$run
echo "[bench] results in $dir"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/syslet-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ------------------------------------------------------- before the run
nproc=$(nproc)
read -r load1 load5 load15 _ </proc/loadavg
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
qemu=${QEMU:-qemu-system-x86_64}
qemu_version=$("$qemu" --version 2>/dev/null | head -n 1 || true)
accel=${QEMU_ACCEL:-tcg}
if [[ $accel != tcg ]]; then
	accel_desc=$accel
elif [[ -n $QEMU_ICOUNT ]]; then
	accel_desc="tcg, single-threaded, -icount $QEMU_ICOUNT"
else
	accel_desc="tcg, multi-threaded"
fi
append="syslet.mode=run syslet.timeout=0${BENCH_APPEND:+ $BENCH_APPEND}"
if [[ $mode == wall ]] && awk -v l="$load1" -v n="$nproc" 'BEGIN { exit !(l > n / 4) }'; then
	echo "[bench] warning: host load average $load1 on $nproc CPUs: wall-clock figures under TCG suffer from host load; run on an idle host" >&2
fi
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "mode: $mode"
	echo "host cpu: ${cpu_model:-unknown}"
	echo "host nproc: $nproc"
	echo "host load average at start: $load1 $load5 $load15"
	echo "qemu: ${qemu_version:-unknown} ($qemu)"
	echo "accel: $accel_desc"
	echo "repo: $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
	echo "kernel image: $(realpath -- "$bzimage") (sha256 $(sha256sum <"$bzimage" | cut -d' ' -f1))"
	echo "program: $(realpath -- "$bin") (sha256 $(sha256sum <"$bin" | cut -d' ' -f1))"
	echo "guest command: $run_cmd"
	echo "kernel append: $append"
	echo "command line: $cmdline"
} >"$dir/meta.txt"

# ------------------------------------------------------------- the run
echo "[bench] packing the initramfs: $run_cmd"
"$repo/initramfs/mkcpio.sh" --run-files "$bin" --run-cmd "$run_cmd" \
	"$tmp/initramfs.cpio" "$repo/initramfs/base.list"
set +e
"$repo/qemu/run-qemu.sh" -k "$bzimage" -i "$tmp/initramfs.cpio" -l "$dir/bench.log" -m "${BENCH_MEM:-2G}" \
	-t "$timeout_s" -a "$append" | tee "$tmp/qemu.out"
qemu_rc=${PIPESTATUS[0]}
set -e
read -r end1 end5 end15 _ </proc/loadavg

# ------------------------------------------------------- after the run
failed=()
((qemu_rc == 0)) || failed+=("qemu/run-qemu.sh exited $qemu_rc")
tr -d '\r' <"$dir/bench.log" >"$tmp/clean.log"

# The CSV: rows with the header's number of fields (a kernel message
# printed in the middle of a row garbles it: dropped, and counted).
awk -v out="$dir/bench.csv" '
	/^BENCH,/ {
		row = substr($0, 7)
		nf = split(row, f, ",")
		if (!hdr) {
			if (f[1] != "workload") { bad++; next }
			hdr = nf
		} else if (nf != hdr || f[1] == "workload") { bad++; next }
		print row > out
		rows++
	}
	END { printf "%d %d\n", rows + 0, bad + 0 }
' "$tmp/clean.log" >"$tmp/csv.count"
read -r csv_rows csv_bad <"$tmp/csv.count"
if ((csv_rows < 2)); then
	failed+=("no CSV rows (BENCH,...) in the log")
	rm -f "$dir/bench.csv"
fi
((csv_bad == 0)) || echo "[bench] warning: $csv_bad garbled BENCH, lines dropped" >&2
grep -q '^BENCH-CSV-END' "$tmp/clean.log" ||
	failed+=("no BENCH-CSV-END line: the program did not finish its CSV")

# The tables: what the program printed after its CSV, up to init's status.
awk '
	/^BENCH-CSV-END/ { on = 1; next }
	/^syslet-init: (exit status|killed by signal|failed to start)/ { on = 0 }
	on && !/^\[ *[0-9]+\.[0-9]+\] / { print }
' "$tmp/clean.log" >"$dir/table.txt"

guest_release=$(grep -o -m1 'Linux version [^ ]*' "$tmp/clean.log" | cut -d' ' -f3 || true)
status=$(grep -E -m1 '^syslet-init: (exit status|killed by signal|failed to start)' "$tmp/clean.log" || true)
[[ $status == "syslet-init: exit status 0"* ]] || failed+=("guest: ${status:-no exit status line}")
splats=$("$repo/qemu/judge.sh" "$dir/bench.log" bench 2>/dev/null | grep -F ': splat: ' || true)
[[ -z $splats ]] || failed+=("kernel splats in the log")

plotted=no
if [[ -f $dir/bench.csv ]]; then
	if "$repo/bench/plot.sh" "$dir/bench.csv" "$dir"; then
		plotted=yes
	else
		failed+=("bench/plot.sh failed")
	fi
fi

{
	echo "qemu command:$(sed -n 's/^\[qemu\] command://p' "$tmp/qemu.out" | head -n 1)"
	echo "guest kernel: ${guest_release:-unknown}"
	echo "guest status: ${status#syslet-init: }"
	echo "run-qemu.sh exit code: $qemu_rc ($(sed -n 's/^\[qemu\] finished in \([0-9]*s\).*/\1/p' "$tmp/qemu.out"))"
	echo "host load average at end: $end1 $end5 $end15"
	echo "csv rows: $csv_rows (with the header; $csv_bad garbled lines dropped)"
	echo "plots: $plotted"
	[[ -z $splats ]] || printf 'splat: %s\n' "${splats//$'\n'/$'\nsplat: '}"
	if ((${#failed[@]})); then
		printf 'failed: %s\n' "${failed[@]}"
	else
		echo "result: ok"
	fi
} >>"$dir/meta.txt"

if ((${#failed[@]})); then
	printf '[bench] FAILED: %s\n' "${failed[@]}" >&2
	echo "[bench] what was found is in $dir ($root/latest not updated)" >&2
	exit 1
fi
ln -sfn "$run" "$root/latest"
echo "[bench] done: $dir ($root/latest)"
