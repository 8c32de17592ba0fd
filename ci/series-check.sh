#!/usr/bin/env bash
# Build the kernel at every patch of the series (CONFIG_SYSLET=y from the
# patch that makes it selectable on), then the whole series with
# CONFIG_SYSLET=n: each patch builds, and the feature can be left out.
#
# Usage: ci/series-check.sh KTREE OUTDIR BASE_CONFIG
#   KTREE:       the kernel work tree (tag "base" + the series as commits)
#   OUTDIR:      scratch space (a git worktree and a build directory)
#   BASE_CONFIG: a full .config to start from (the normal guest kernel's)
# Takes one full kernel build plus the incremental ones (tens of minutes
# on two cores); not part of `make test`.
set -euo pipefail
ktree=$(realpath "$1") out=$(realpath -m "$2") config=$(realpath "$3")
wt=$out/tree obj=$out/obj
jobs=${JOBS:-$(($(nproc) + 1))}
cc=gcc
command -v ccache >/dev/null && cc="ccache gcc"
kmake() { make -s -C "$wt" O="$obj" CC="$cc" "$@"; }

rm -rf "$wt"
git -C "$ktree" worktree prune
git -C "$ktree" worktree add -q --detach "$wt" base
trap 'git -C "$ktree" worktree remove --force "$wt"' EXIT
mkdir -p "$obj"
cp "$config" "$obj/.config"

build() {	# build LABEL
	rm -f "$obj/arch/x86/boot/bzImage"
	if kmake -j"$jobs" bzImage > "$obj/build.log" 2>&1 && [ -f "$obj/arch/x86/boot/bzImage" ]; then
		echo "ok $1"
	else
		echo "not ok $1"
		tail -20 "$obj/build.log" | sed 's/^/# /'
		fail=1
	fi
}

fail=0
for c in $(git -C "$ktree" rev-list --reverse base..HEAD); do
	git -C "$wt" checkout -q "$c"
	"$wt/scripts/config" --file "$obj/.config" -e SYSLET
	kmake olddefconfig
	build "$(git -C "$wt" log -1 --format=%s) ($(grep -q '^CONFIG_SYSLET=y' "$obj/.config" && echo SYSLET=y || echo SYSLET unavailable))"
done
"$wt/scripts/config" --file "$obj/.config" -d SYSLET
kmake olddefconfig
build "whole series with CONFIG_SYSLET=n"
exit $fail
