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
# Date the cover letter like the newest patch, so that regenerating an
# unchanged series changes nothing.
sed -i "s/^Date: .*/Date: $(git_k log -1 --format=%aD HEAD)/" "$out/0000-cover-letter.patch"
# The series for `git am`/quilt: the cover letter carries no diff.
for p in "$out"/[0-9]*.patch; do
	case ${p##*/} in 0000-cover-letter.patch) ;; *) echo "${p##*/}" ;; esac
done > "$out/series"
# The tree is what the series now says: mark it up to date for
# ci/kernel-tree.sh (same stamp format).
printf '%s %s\n' "$(cat "$out"/series "$out"/*.patch | sha256sum | cut -c1-16)" \
	"$(git_k rev-parse HEAD)" > "$ktree/.git/syslet-series"
echo "[patches] $(grep -c . "$out/series") files in $out"
