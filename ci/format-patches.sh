#!/usr/bin/env bash
# Regenerate kernel-patches/ from the kernel work tree: every commit after
# the tag "base", as `git format-patch` output with a cover letter taken
# from the branch description (ci/kernel-tree.sh restores it from the
# cover letter), plus a `series` file (quilt order).
#
# Usage: ci/format-patches.sh KTREE PATCHDIR
set -euo pipefail
ktree=$1 out=$2
git_k() { git -C "$ktree" "$@"; }

branch=$(git_k symbolic-ref --short HEAD)
git_k config "branch.$branch.description" >/dev/null || {
	echo "[patches] set the cover letter first: git -C $ktree branch --edit-description" >&2
	exit 1
}
rm -f "$out"/*.patch "$out"/series
git_k format-patch -q --no-signature --zero-commit --cover-letter \
	--cover-from-description=subject -o "$out" base..HEAD
# The series for `git am`/quilt: the cover letter carries no diff.
(cd "$out" && ls -1 [0-9]*.patch | grep -v '^0000-cover-letter' > series)
echo "[patches] $(grep -c . "$out/series") files in $out"
