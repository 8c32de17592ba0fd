#!/usr/bin/env bash
# Host-side checks of `make test`: Rust formatting, lints and unit tests,
# generated bindings up to date, checkpatch over the series, the series
# applying to a pristine tree, the harness judge's self-test, and the
# table of task_struct fields against the built kernels.
#
# Usage: ci/host-checks.sh BUILD
# Prints one `ok`/`not ok` line per check (cargo's unit tests are counted
# one by one) and ends with `N passed, N failed`; exit 0 only if all passed.
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
ktree=${KTREE:-$build/linux}
logdir=$build/logs/host
mkdir -p "$logdir"
export CARGO_TARGET_DIR=$build/cargo
pass=0 fail=0 n=0

check() {	# check NAME CMD... : run CMD, log to $logdir/NAME.log
	local name=$1
	shift
	n=$((n + 1))
	echo "[host] $name" >&2
	if "$@" > "$logdir/$name.log" 2>&1; then
		echo "ok $n $name"
		pass=$((pass + 1))
	else
		echo "not ok $n $name # see $logdir/$name.log"
		sed 's/^/# /' "$logdir/$name.log" | tail -40
		fail=$((fail + 1))
	fi
}

checkpatch() {
	local p out=0
	for p in kernel-patches/0*.patch; do
		case $p in *cover-letter*) continue ;; esac
		# FILE_PATH_CHANGES fires for every new file of a patch that does
		# not touch MAINTAINERS; the series' SYSLETS entry covers
		# tools/testing/selftests/syslet/ as a whole.  ENOSYS fires for
		# kernel.syslet_disabled=2, whose contract is that the syslet
		# calls fail as on a kernel without them: with ENOSYS.
		# Debian's python3 first: spdxcheck.py needs its python3-ply
		# and python3-git (another python3 on PATH would lack them).
		(cd "$ktree" && PATH=/usr/bin:$PATH ./scripts/checkpatch.pl --strict \
			--quiet --no-summary --ignore FILE_PATH_CHANGES,ENOSYS \
			"$top/$p") || out=1
	done
	return $out
}

series_applies() {
	local wt
	wt=$(mktemp -d)
	git -C "$ktree" worktree add -q --detach "$wt" base || return 1
	local rc=0 p
	while read -r p; do
		git -C "$wt" -c user.name=check -c user.email=check@syslet.invalid am -q "$top/kernel-patches/$p" ||
			{ echo "does not apply: $p"; rc=1; break; }
	done < kernel-patches/series
	git -C "$ktree" worktree remove --force "$wt"
	return $rc
}

echo "KTAP version 1"
check rustfmt cargo fmt --all -- --check
check clippy cargo clippy -q --workspace --all-targets -- -D warnings
check checkpatch checkpatch
check series-applies series_applies
check bindings-current ci/bindgen.sh --check "$build/tools" "$build/headers/include"
check judge-selftest qemu/test-judge.sh
# Every field of task_struct has a row in the handoff's table (both configs)
check task-state-normal ci/task-state-check.sh "$ktree" "$build/kernel-normal" docs/task-struct.md
check task-state-debug ci/task-state-check.sh "$ktree" "$build/kernel-debug" docs/task-struct.md

# Unit tests: one line per cargo test.
echo "[host] cargo test" >&2
if cargo test -q --workspace > "$logdir/cargo-test.log" 2>&1; then rc=0; else rc=1; fi
p=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($i ~ /^passed;?$/) s += $(i-1)} END {print s + 0}' "$logdir/cargo-test.log")
f=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($i ~ /^failed;?$/) s += $(i-1)} END {print s + 0}' "$logdir/cargo-test.log")
echo "# cargo test: $p passed, $f failed"
if [ $rc != 0 ] && [ "$f" = 0 ]; then
	echo "not ok cargo-test # cargo test failed to build or run, see $logdir/cargo-test.log"
	tail -40 "$logdir/cargo-test.log" | sed 's/^/# /'
	f=1
fi
pass=$((pass + p)) fail=$((fail + f))

echo "$pass passed, $fail failed"
[ $fail = 0 ] && [ $pass -gt 0 ]
