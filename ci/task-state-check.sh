#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Check that the syslet handoff's task_struct table names every member of
# struct task_struct in a configured kernel build.
#
# Usage: task-state-check.sh KTREE OBJDIR TABLE
#   KTREE:  the kernel source tree (the work tree with the series)
#   OBJDIR: a build directory of KTREE that is configured and prepared
#           (`make O=OBJDIR prepare`, or any full build); only read
#   TABLE:  the table (task-struct.md): a markdown table whose rows start
#           with "| `field` | disposition | reason |"
#
# Compiles a two-line file that includes <linux/sched.h> with -g, with
# OBJDIR's configuration, as an external-module object in a temporary
# directory (make M=): nothing is written to KTREE or OBJDIR, so a build
# running in OBJDIR is not disturbed (unlike `make O=OBJDIR KCFLAGS=-g
# kernel/fork.s`, which rebuilds asm-offsets and bounds with the changed
# flags).  pahole (Debian package dwarves) reads struct task_struct from
# its DWARF; the members of anonymous structs and unions (RANDSTRUCT puts
# most of task_struct in one) are named as top-level members, as C names
# them.  Takes about 1.5 s on two cores.
#
# Also checks that every row has a reason and a disposition that is one
# of moved, swapped, refused, n/a, and that no field has two rows.
# Exit 0 with "task-state: N fields, all named"; 1 listing each field the
# table does not name (and each bad row); 2 on a usage or build error.
# Env: LLVM=1 etc. reach kbuild as usual; V=1 shows the kbuild output.
set -euo pipefail

if [ $# -ne 3 ]; then
	sed -n '3,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
ktree=$(realpath "$1") obj=$(realpath "$2") table=$3

for f in "$ktree/include/linux/sched.h" "$obj/include/config/auto.conf" \
	 "$obj/include/generated/autoconf.h" "$table"; do
	if [ ! -f "$f" ]; then
		echo "task-state: $f missing (is $obj a configured, prepared build of $ktree?)" >&2
		exit 2
	fi
done
command -v pahole >/dev/null || { echo "task-state: pahole not found (apt-get install dwarves)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/task-state.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

printf '#include <linux/sched.h>\nstruct task_struct *task_state_check;\n' > "$tmp/ts.c"
echo 'obj-y := ts.o' > "$tmp/Kbuild"
# -g over whatever the config says; one object file with plain DWARF
quiet=-s
[ -z "${V:-}" ] || quiet=V=$V
if ! make -C "$ktree" O="$obj" M="$tmp" "$quiet" \
	KCFLAGS="-g -gno-split-dwarf -gz=none" ts.o > "$tmp/build.log" 2>&1 ||
   [ ! -f "$tmp/ts.o" ]; then
	cat "$tmp/build.log" >&2
	echo "task-state: compiling <linux/sched.h> against $obj failed" >&2
	exit 2
fi
[ -z "${V:-}" ] || cat "$tmp/build.log" >&2

pahole -C task_struct "$tmp/ts.o" > "$tmp/pahole.txt"
if ! grep -q '^struct task_struct {' "$tmp/pahole.txt"; then
	echo "task-state: pahole found no struct task_struct in the object" >&2
	exit 2
fi

# Member names: top-level members, with those of anonymous structs and
# unions in their place.  A member of an unnamed type ("struct { ... } x;")
# is named by x alone.
awk '
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
# The name a member declaration declares, or "" for an unnamed bit field.
function declname(s) {
	s = trim(s)
	sub(/;$/, "", s)
	sub(/[ \t]*__attribute__.*$/, "", s)
	if (s ~ /\(\*/) {			# function pointer: ret (*name)(args)
		s = substr(s, index(s, "(*") + 2)
		sub(/\).*$/, "", s)
		return trim(s)
	}
	if (s ~ /(^|[ \t*]):[ \t]*[0-9]+$/)	# unnamed bit field
		return ""
	sub(/[ \t]*:[ \t]*[0-9]+$/, "", s)	# bit-field width
	gsub(/\[[^]]*\]/, "", s)		# array dimensions
	s = trim(s)
	n = split(s, w, /[ \t*]+/)
	return w[n]
}
{ gsub(/\/\*.*\*\//, "") }			# pahole comments (one line each)
/^[ \t]*$/ { next }
depth == 0 {
	if ($0 ~ /^struct task_struct \{/) { depth = 1; buf[1] = "" }
	next
}
/\{[ \t]*$/ { buf[++depth] = ""; next }		# an inline (unnamed) type opens
/^[ \t]*\}/ {
	rest = $0
	sub(/^[ \t]*\}/, "", rest)
	if (--depth == 0) {
		printf "%s", buf[1]
		exit
	}
	name = declname(rest)
	if (name == "")				# anonymous: its members are ours
		buf[depth] = buf[depth] buf[depth + 1]
	else
		buf[depth] = buf[depth] name "\n"
	next
}
/;[ \t]*$/ {
	name = declname($0)
	if (name != "")
		buf[depth] = buf[depth] name "\n"
}
' "$tmp/pahole.txt" > "$tmp/fields"

if [ ! -s "$tmp/fields" ]; then
	echo "task-state: no members parsed from pahole's output" >&2
	exit 2
fi

# Field rows of the table: "| `name` | disposition | ... |".  Rows whose
# first cell is more than one backquoted identifier (the parts of a field,
# "`flags` ∋ `PF_MCE_EARLY`") name no field, but their disposition is
# checked too.
awk -F'|' -v bad="$tmp/bad" '
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
/^\|/ && NF >= 4 {
	f = trim($2); d = trim($3); r = NF >= 5 ? trim($4) : ""
	if (f == "field" || f ~ /^:?-+:?$/)
		next
	if (d != "moved" && d != "swapped" && d != "refused" && d != "n/a")
		printf "line %d: disposition \"%s\" is none of moved, swapped, refused, n/a\n", NR, d > bad
	if (r == "")
		printf "line %d: no reason\n", NR > bad
	if (f ~ /^`[A-Za-z_][A-Za-z0-9_]*`$/) {
		f = substr(f, 2, length(f) - 2)
		if (f in seen)
			printf "line %d: `%s` has a row already (line %d)\n", NR, f, seen[f] > bad
		else
			seen[f] = NR
		print f
	}
}
' "$table" | sort -u > "$tmp/named"

sort -u "$tmp/fields" > "$tmp/built"
total=$(wc -l < "$tmp/built")
comm -23 "$tmp/built" "$tmp/named" > "$tmp/missing"

fail=0
if [ -s "$tmp/missing" ]; then
	echo "task-state: $(wc -l < "$tmp/missing") of $total fields of struct task_struct in $obj are not named in $table:" >&2
	sed 's/^/  /' "$tmp/missing" >&2
	fail=1
fi
if [ -s "$tmp/bad" ]; then
	echo "task-state: bad rows in $table:" >&2
	sed 's/^/  /' "$tmp/bad" >&2
	fail=1
fi
[ $fail = 0 ] || exit 1
echo "task-state: $total fields, all named"
