#!/usr/bin/env bash
# qemu/stress/mklist.sh - the gen_init_cpio list that adds Debian's
# dynamically linked stress-ng and trinity to the guest: busybox (static,
# for the shell and timeout), the programs, their loader and every library
# `ldd` names, at their host paths.  Used by `make stress`.
#
# Usage: qemu/stress/mklist.sh OUT.list
set -euo pipefail

out=$1
etc=$(dirname "$out")/stress-etc
progs=(/usr/bin/stress-ng /usr/bin/trinity)
for p in /bin/busybox "${progs[@]}"; do
	[ -x "$p" ] || { echo "mklist.sh: $p missing (ci/deps.sh --stress)" >&2; exit 1; }
done

# trinity -X switches to the user nobody, looked up in /etc/passwd
mkdir -p "$etc"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$etc/group"

{
	echo "# made by qemu/stress/mklist.sh"
	echo "file /etc/passwd $etc/passwd 0644 0 0"
	echo "file /etc/group $etc/group 0644 0 0"
	echo "dir /usr 0755 0 0"
	echo "dir /usr/bin 0755 0 0"
	echo "file /bin/busybox /bin/busybox 0755 0 0"
	for a in sh timeout grep tail mkdir chmod; do
		echo "slink /bin/$a busybox 0777 0 0"
	done
	for p in "${progs[@]}"; do
		echo "file $p $p 0755 0 0"
	done
	# The libraries, at the paths the loader searches (Debian's /lib is
	# a link to /usr/lib): resolved to their files.
	ldd "${progs[@]}" | awk '/=> \//{print $3} /^\t\/lib64\//{print $1}' | sort -u |
	while read -r lib; do
		dir=$(dirname "$lib")
		[ "$(dirname "$dir")" = / ] || echo "dir $(dirname "$dir") 0755 0 0"
		echo "dir $dir 0755 0 0"
		echo "file $lib $(readlink -f "$lib") 0755 0 0"
	done
} | awk '!seen[$0]++' > "$out"
