#!/usr/bin/env bash
# Configure and build a guest kernel out of tree.
#
# Usage: ci/build-kernel.sh KTREE OUTDIR FRAGMENT...
#   The config is `make tinyconfig` with the fragments merged in order
#   (scripts/kconfig/merge_config.sh); it is regenerated when a fragment
#   changes.  Builds bzImage with ccache when it is installed.
# Env: JOBS (default: cores + 1), V=1 for the full kbuild output.
set -euo pipefail

ktree=$(realpath "$1") out=$(realpath -m "$2")
shift 2
frags=()
for f in "$@"; do frags+=("$(realpath "$f")"); done
jobs=${JOBS:-$(($(nproc) + 1))}
cc=gcc
command -v ccache >/dev/null && cc="ccache gcc"
kmake() { make -C "$ktree" O="$out" CC="$cc" ${V:+V=$V} "$@"; }

mkdir -p "$out"
want=$(cat "${frags[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$out/.config" ] || [ "$(cat "$out/.syslet-frags" 2>/dev/null)" != "$want" ]; then
	echo "[kernel] configuring $out (tinyconfig + ${frags[*]##*/})"
	kmake -s tinyconfig >/dev/null
	(cd "$ktree" && scripts/kconfig/merge_config.sh -m -O "$out" "$out/.config" "${frags[@]}" >/dev/null)
	kmake -s olddefconfig >/dev/null
	# Every option a fragment sets must have survived olddefconfig.
	bad=0
	while IFS= read -r line; do
		case $line in
		CONFIG_*=n) grep -q "^# ${line%=n} is not set" "$out/.config" || { echo "[kernel] not honoured: $line" >&2; bad=1; } ;;
		CONFIG_*) grep -qx "$line" "$out/.config" || { echo "[kernel] not honoured: $line" >&2; bad=1; } ;;
		esac
	done < <(cat "${frags[@]}")
	[ $bad = 0 ] || exit 1
	echo "$want" > "$out/.syslet-frags"
fi
echo "[kernel] building $out/arch/x86/boot/bzImage with $jobs jobs ($cc)"
start=$(date +%s)
silent=-s
[ -z "${V:-}" ] || silent=
if ! kmake $silent -j"$jobs" bzImage 2>&1 | tee "$out/build.log"; then
	echo "[kernel] build of $out FAILED (log: $out/build.log)" >&2
	exit 1
fi
echo "[kernel] $out done in $(($(date +%s) - start))s"
