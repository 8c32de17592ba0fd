#!/usr/bin/env bash
# Build the kernel's own selftests of what the syslet series touches as
# static programs, out of tree, and the initramfs list that packs them.
#
# Usage: ci/build-kselftest.sh KTREE HDR OUTDIR LIST
#   KTREE   kernel tree whose tools/testing/selftests is built (read only)
#   HDR     installed uapi headers (make headers: build/headers/include)
#   OUTDIR  output: OUTDIR/<dir>/<program>, OUTDIR/guest.list (gen_init_cpio
#           lines: every program and its files under /kselftest, the
#           runner, /etc/syslet/tests) and OUTDIR/tests
#   LIST    qemu/kselftest/programs: NAME TIMEOUT DIR/PROGRAM [ARGS...]
# Each selftest folder is built with its own Makefile (lib.mk) with
# OUTPUT=OUTDIR/<dir> and CC="gcc -static" (the guest has no libc), so
# nothing is written into KTREE; rseq's tests are linked with rseq.c
# instead of librseq.so. Only 64-bit x86 programs (no -m32 libc).
# Env: JOBS.
set -euo pipefail

(($# == 4)) || { sed -n '5,14s/^# \{0,1\}//p' "$0" >&2; exit 2; }
ktree=$(realpath "$1") hdr=$(realpath "$2") out=$(realpath -m "$3") list=$(realpath "$4")
here=$(cd "$(dirname -- "$0")/.." && pwd)
src=$ktree/tools/testing/selftests
jobs=${JOBS:-$(($(nproc) + 1))}
mkdir -p "$out"
log=$out/build.log
: >"$log"

kmake() { # DIR GOALS...
	local d=$1
	shift
	mkdir -p "$out/$d"
	make -k -C "$src/$d" -j"$jobs" OUTPUT="$out/$d" CC="gcc -static" \
		KHDR_INCLUDES="-isystem $hdr" "$@" >>"$log" 2>&1 || true
}

echo "[kselftest] building the selftests of $ktree into $out"
for d in seccomp pidfd clone3 ptrace sigaltstack proc futex/functional x86; do
	kmake "$d" all
done
# exec: the static-PIE load_address variants only (the others are dynamic
# PIEs), plus the files execveat opens in its directory.
kmake exec "$out/exec/execveat" "$out/exec/non-regular" "$out/exec/recursion-depth" \
	"$out/exec/null-argv" "$out/exec/execveat.symlink" "$out/exec/execveat.denatured" \
	"$out/exec/script" "$out/exec/subdir"
# (-static-pie conflicts with CC's -static: plain gcc, static PIEs anyway)
make -k -C "$src/exec" OUTPUT="$out/exec" CC=gcc "$out/exec/load_address.static.0x1000" \
	"$out/exec/load_address.static.0x200000" "$out/exec/load_address.static.0x1000000" \
	>>"$log" 2>&1 || true
cp "$src/exec/Makefile" "$out/exec/Makefile"
# rseq: each test with rseq.c compiled in (librseq.so cannot be linked
# statically); the same -D variants as rseq/Makefile.
mkdir -p "$out/rseq"
rseq() { # OUT SOURCE DEFINES...
	local o=$1 s=$2
	shift 2
	gcc -static -O2 -Wall -g -I"$src/rseq" -isystem "$hdr" -I"$ktree/tools/include" "$@" \
		-o "$out/rseq/$o" "$src/rseq/$s" "$src/rseq/rseq.c" -lpthread -ldl >>"$log" 2>&1 ||
		echo "[kselftest] rseq/$o failed to build" >>"$log"
}
rseq basic_test basic_test.c
rseq basic_percpu_ops_test basic_percpu_ops_test.c
rseq basic_percpu_ops_mm_cid_test basic_percpu_ops_test.c -DBUILDOPT_RSEQ_PERCPU_MM_CID
rseq param_test param_test.c
rseq param_test_benchmark param_test.c -DBENCHMARK
rseq param_test_compare_twice param_test.c -DRSEQ_COMPARE_TWICE
rseq param_test_mm_cid param_test.c -DBUILDOPT_RSEQ_PERCPU_MM_CID
rseq param_test_mm_cid_benchmark param_test.c -DBUILDOPT_RSEQ_PERCPU_MM_CID -DBENCHMARK
rseq param_test_mm_cid_compare_twice param_test.c -DBUILDOPT_RSEQ_PERCPU_MM_CID -DRSEQ_COMPARE_TWICE

# The runner: chdir, per-program timeout, one result line.
gcc -static -O2 -Wall -Werror -o "$out/ksft-run" "$here/qemu/kselftest/ksft-run.c"

# Every listed program must exist and be static.
bad=0 n=0
glist=$out/guest.list.tmp tests=$out/tests
: >"$tests"
declare -A dirs=()
while read -r name timeout prog args; do
	[[ -z $name || $name == \#* ]] && continue
	n=$((n + 1))
	if [[ ! -x $out/$prog ]]; then
		echo "[kselftest] $prog was not built (see $log)" >&2
		bad=1
		continue
	fi
	if file -L "$out/$prog" | grep -q 'dynamically linked'; then
		echo "[kselftest] $prog is not static" >&2
		bad=1
	fi
	# Debug info would make the initramfs ~130 MB.
	strip --strip-debug "$out/$prog"
	dirs[$(dirname "$prog")]=1
	# init runs: ksft-run TIMEOUT NAME DIR PROGRAM [ARGS...]
	echo "$name /kselftest/ksft-run $timeout $name /kselftest/$(dirname "$prog") ./$(basename "$prog")${args:+ $args}" >>"$tests"
done <"$list"
((bad == 0)) || exit 1

# The guest tree: /kselftest/<dir>/ with every file the build left there
# (programs, the files they open; not objects), symlinks kept.
{
	echo "dir /kselftest 0755 0 0"
	echo "file /kselftest/ksft-run $out/ksft-run 0755 0 0"
	echo "file /etc/syslet/tests $tests 0644 0 0"
	for d in $(printf '%s\n' "${!dirs[@]}" | sort); do
		p=/kselftest
		IFS=/ read -ra parts <<<"$d"
		for part in "${parts[@]}"; do
			p=$p/$part
			echo "dir $p 0755 0 0"
		done
		(cd "$out/$d" && find . -mindepth 1 -maxdepth 1 ! -name '*.o' ! -name '*.d' -print | sort) |
			while read -r f; do
				f=${f#./}
				if [[ -L $out/$d/$f ]]; then
					echo "slink /kselftest/$d/$f $(readlink "$out/$d/$f") 0777 0 0"
				elif [[ -d $out/$d/$f ]]; then
					echo "dir /kselftest/$d/$f 0755 0 0"
				elif [[ -f $out/$d/$f ]]; then
					echo "file /kselftest/$d/$f $out/$d/$f $(stat -c %a "$out/$d/$f") 0 0"
				fi
			done
	done
} >"$glist"
mv -f "$glist" "$out/guest.list"
echo "[kselftest] $n programs listed, built and static ($out/guest.list)"
