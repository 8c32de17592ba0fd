#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# mkcpio.sh - pack gen_init_cpio spec files into a reproducible cpio.
#
# Usage: initramfs/mkcpio.sh [-D NAME=VALUE]... [-d DEPFILE] OUT.cpio LIST...
#
# Concatenates the LIST files (gen_init_cpio format), replaces every
# @NAME@ placeholder with the value given by -D NAME=VALUE or, failing
# that, the environment variable NAME (unset => error), drops repeated
# identical lines (e.g. the same `dir` from two lists), writes the
# resolved spec to OUT.cpio.list, and runs
#   $GEN_INIT_CPIO -t ${SOURCE_DATE_EPOCH:-0} OUT.cpio.list > OUT.cpio
# so the archive does not depend on file timestamps. No root needed.
# With -d, also writes a make dependency file listing every packed file.
#
# Environment: GEN_INIT_CPIO (default: gen_init_cpio in $PATH; the kernel
# build leaves one at <objdir>/usr/gen_init_cpio), SOURCE_DATE_EPOCH.
# Exit: 0 ok, 1 error (message on stderr), 2 usage.
set -euo pipefail

usage() {
	echo "usage: $0 [-D NAME=VALUE]... [-d DEPFILE] OUT.cpio LIST..." >&2
	exit 2
}

die() {
	echo "mkcpio.sh: $*" >&2
	exit 1
}

declare -A defs=()
depfile=
while getopts "D:d:h" opt; do
	case $opt in
	D)
		[[ $OPTARG == *=* ]] || die "-D wants NAME=VALUE, got '$OPTARG'"
		defs[${OPTARG%%=*}]=${OPTARG#*=}
		;;
	d) depfile=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# >= 2)) || usage
out=$1
shift

gen=${GEN_INIT_CPIO:-gen_init_cpio}
command -v "$gen" >/dev/null || die "gen_init_cpio not found (set GEN_INIT_CPIO): $gen"

# Resolve one line's placeholders.
resolve() {
	local line=$1 name value
	while [[ $line =~ @([A-Za-z_][A-Za-z0-9_]*)@ ]]; do
		name=${BASH_REMATCH[1]}
		if [[ -v defs[$name] ]]; then
			value=${defs[$name]}
		elif [[ -v $name ]]; then
			value=${!name}
		else
			die "$src:$lineno: placeholder @$name@ has no value (-D $name=... or env $name)"
		fi
		[[ $value != *[[:space:]@]* && -n $value ]] ||
			die "$src:$lineno: @$name@ value '$value' is empty or has whitespace or @"
		line=${line//"@$name@"/$value}
	done
	printf '%s\n' "$line"
}

tmp=$(mktemp "$out.list.XXXXXX")
trap 'rm -f "$tmp" "$out.tmp"' EXIT
declare -A seen=()
deps=()
for src in "$@"; do
	[[ -r $src ]] || die "cannot read list $src"
	deps+=("$src")
	lineno=0
	while IFS= read -r raw || [[ -n $raw ]]; do
		lineno=$((lineno + 1))
		[[ $raw =~ ^[[:space:]]*(#|$) ]] && continue
		line=$(resolve "$raw")
		[[ -n ${seen[$line]-} ]] && continue
		seen[$line]=1
		printf '%s\n' "$line" >>"$tmp"
		# Second field of `file NAME LOCATION ...` is a host file.
		read -r kind _ location _ <<<"$line"
		if [[ $kind == file ]]; then
			[[ -r $location ]] || die "$src:$lineno: cannot read $location"
			deps+=("$location")
		fi
	done <"$src"
done

"$gen" -t "${SOURCE_DATE_EPOCH:-0}" "$tmp" >"$out.tmp" || die "$gen failed on $tmp"
mv -f "$tmp" "$out.list"
mv -f "$out.tmp" "$out"
if [[ -n $depfile ]]; then
	{
		printf '%s:' "$out"
		printf ' \\\n  %s' "${deps[@]}"
		printf '\n'
	} >"$depfile"
fi
