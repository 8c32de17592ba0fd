#!/usr/bin/env bash
# Create or refresh the kernel work tree: a git repository holding pristine
# Linux 6.12 (tag "base") plus the patch series (kernel-patches/) as commits.
#
# Usage: ci/kernel-tree.sh KTREE PATCHDIR [KERNEL_SRC]
#   KERNEL_SRC: a user's own 6.12 tree; default Debian's linux-source-6.12.
#
# The tree is rebuilt from scratch when it does not exist.  When the series
# changed since it was applied, the tree is reset to "base" and the series
# applied again, but only if nothing was committed or edited in the tree
# since (so a developer's work is never thrown away).
set -euo pipefail

ktree=$1 patches=$2 src=${3:-}
tarball=/usr/src/linux-source-6.12.tar.xz
stamp=$ktree/.git/syslet-series

series_id() { cat "$patches"/series "$patches"/*.patch 2>/dev/null | sha256sum | cut -c1-16; }
git_k() { git -C "$ktree" -c user.name="syslet build" -c user.email="build@syslet.invalid" "$@"; }

apply_series() {
	echo "[kernel-tree] applying $(grep -c . "$patches/series") patches from $patches"
	while read -r p; do
		[ -n "$p" ] || continue
		git_k am -q --keep-cr "$patches/$p" || {
			git_k am --abort || true
			echo "[kernel-tree] FAILED: $p does not apply" >&2
			exit 1
		}
	done < "$patches/series"
	printf '%s %s\n' "$(series_id)" "$(git_k rev-parse HEAD)" > "$stamp"
	# The cover letter is the branch description (see ci/format-patches.sh).
	if [ -f "$patches/0000-cover-letter.patch" ]; then
		git_k config "branch.$(git_k symbolic-ref --short HEAD).description" \
			"$(awk '/^Subject: /{sub(/^Subject: \[PATCH[^]]*\] /,""); print; print ""; body=1; next}
				body && /^[^ ].* \([0-9]+\):$/ {exit}
				body==1 && /^$/ {body=2; next}
				body==2 {print}' "$patches/0000-cover-letter.patch")"
	fi
}

if [ -d "$ktree/.git" ] && [ -f "$stamp" ]; then
	read -r id head < "$stamp"
	[ "$id" = "$(series_id)" ] && { echo "[kernel-tree] up to date: $ktree"; exit 0; }
	if [ "$(git_k rev-parse HEAD)" != "$head" ] || [ -n "$(git_k status --porcelain --ignored=no -uno)" ]; then
		echo "[kernel-tree] $ktree has work of its own and the series changed:" >&2
		echo "[kernel-tree] regenerate the series (make patches) or remove the tree." >&2
		exit 1
	fi
	git_k reset -q --hard base
	apply_series
	exit 0
fi

rm -rf "$ktree"
mkdir -p "$ktree"
if [ -n "$src" ]; then
	[ -f "$src/Makefile" ] || { echo "[kernel-tree] KERNEL_SRC=$src is not a kernel tree" >&2; exit 1; }
	echo "[kernel-tree] copying $src"
	rsync -a --exclude=.git "$src"/ "$ktree"/
else
	[ -f "$tarball" ] || { echo "[kernel-tree] $tarball missing (apt-get install linux-source-6.12)" >&2; exit 1; }
	echo "[kernel-tree] extracting $tarball"
	tar -xf "$tarball" -C "$ktree" --strip-components=1
fi
ver=$(make -s -C "$ktree" kernelversion)
case $ver in 6.12|6.12.*) ;; *) echo "[kernel-tree] expected Linux 6.12, found $ver" >&2; exit 1 ;; esac
echo "[kernel-tree] Linux $ver: creating git repository"
git_k init -q
# Debian's tree ignores everything at the top level: add with force.
git_k add -f -A
git_k commit -q -m "Linux $ver"
git_k tag base
apply_series
