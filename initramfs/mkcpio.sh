#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# mkcpio.sh - pack gen_init_cpio spec files into a reproducible cpio.
#
# Usage: initramfs/mkcpio.sh [-D NAME=VALUE]... [-d DEPFILE]
#                            [--run-cmd CMD [--run-files "A B ..."]]
#                            OUT.cpio LIST...
#
# Concatenates the LIST files (the kernel's usr/gen_init_cpio format),
# replaces every @NAME@ placeholder with the value of -D NAME=VALUE or,
# failing that, of the environment variable NAME (unset => error), makes
# relative host paths of `file` lines relative to their LIST's directory,
# drops repeated identical lines (the same `dir` from two lists), keeps the
# resolved spec as OUT.cpio.list, and runs
#   $GEN_INIT_CPIO -t ${SOURCE_DATE_EPOCH:-0} OUT.cpio.list > OUT.cpio
# so the archive depends on file contents only, never on timestamps, and
# needs no root.
#
#   -d DEPFILE   also write a make dependency file (OUT.cpio: every input)
#   --run-cmd    guest-run mode: add initramfs/mkextra.sh's `run` part
#                (CMD in /etc/syslet/cmd, the --run-files in /work), made
#                in OUT.cpio.run/; same as listing that extra.list last
#
# Environment: GEN_INIT_CPIO (default: gen_init_cpio on PATH; a kernel
# build leaves one at <objdir>/usr/gen_init_cpio), SOURCE_DATE_EPOCH.
# Exit: 0 ok, 1 error (message on stderr), 2 usage.
set -euo pipefail

here=$(cd "$(dirname -- "$0")" && pwd)

usage() {
	sed -n '6,8s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

die() {
	echo "mkcpio.sh: $*" >&2
	exit 1
}

declare -A defs=()
depfile='' run_cmd='' run_files='' have_run=0
while (($#)); do
	case $1 in
	-D)
		(($# >= 2)) || usage
		[[ $2 == *=* ]] || die "-D wants NAME=VALUE, got '$2'"
		defs[${2%%=*}]=${2#*=}
		shift 2
		;;
	-D?*=*)
		arg=${1:2}
		defs[${arg%%=*}]=${arg#*=}
		shift
		;;
	-d)
		(($# >= 2)) || usage
		depfile=$2
		shift 2
		;;
	--run-cmd)
		(($# >= 2)) || usage
		run_cmd=$2 have_run=1
		shift 2
		;;
	--run-files)
		(($# >= 2)) || usage
		run_files=$2
		shift 2
		;;
	-h | --help) usage ;;
	--)
		shift
		break
		;;
	-*) usage ;;
	*) break ;;
	esac
done
(($# >= 2 || ($# == 1 && have_run))) || usage
out=$1
shift
lists=("$@")

gen=${GEN_INIT_CPIO:-gen_init_cpio}
command -v "$gen" >/dev/null || die "gen_init_cpio not found (set GEN_INIT_CPIO): $gen"

if ((have_run)); then
	[[ -n ${run_cmd//[[:space:]]/} ]] || die "--run-cmd is empty"
	# shellcheck disable=SC2086 # FILES is a space-separated list of paths.
	"$here/mkextra.sh" run "$out.run" "$run_cmd" $run_files
	lists+=("$out.run/extra.list")
elif [[ -n $run_files ]]; then
	die "--run-files needs --run-cmd"
fi

# Resolve one line's placeholders (errors name $src:$lineno).
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
		[[ -n $value && $value != *[[:space:]@]* ]] ||
			die "$src:$lineno: @$name@ value '$value' is empty or has whitespace or @"
		line=${line//"@$name@"/$value}
	done
	printf '%s\n' "$line"
}

tmp=$(mktemp "$out.list.XXXXXX")
trap 'rm -f "$tmp" "$out.tmp"' EXIT
declare -A seen=()
deps=()
for src in "${lists[@]}"; do
	[[ -r $src ]] || die "cannot read list $src"
	srcdir=$(cd "$(dirname -- "$src")" && pwd)
	deps+=("$src")
	lineno=0
	while IFS= read -r raw || [[ -n $raw ]]; do
		lineno=$((lineno + 1))
		[[ $raw =~ ^[[:space:]]*(#|$) ]] && continue
		line=$(resolve "$raw")
		read -r kind name location rest <<<"$line"
		if [[ $kind == file ]]; then
			# `file NAME LOCATION MODE UID GID`: LOCATION is a host file.
			[[ $location == /* ]] || location=$srcdir/$location
			[[ -r $location ]] || die "$src:$lineno: cannot read $location"
			line="file $name $location $rest"
			deps+=("$location")
		fi
		[[ -n ${seen[$line]-} ]] && continue
		seen[$line]=1
		printf '%s\n' "$line" >>"$tmp"
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
