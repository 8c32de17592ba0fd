#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# guest-status.sh - the outcome of a `make guest-run` boot (initramfs/init
# in syslet.mode=run), read from its saved console log.
#
# Usage: qemu/guest-status.sh LOGFILE
#
# Prints the command's output (the console lines between init's
# "# syslet-init: running in ..." and "syslet-init: exit status ..." lines,
# minus timestamped kernel messages), warns about kernel splats (as
# qemu/judge.sh sees them), then a last line "guest-run: <status>", and
# exits like a shell would for the guest command:
#   N      the command exited with status N
#   128+S  a signal S killed it (SIGKILL for a syslet.timeout kill)
#   127    it could not be started (not found, not executable)
#   125    no status line: the command never ran (boot failure, kernel
#          panic, init error, QEMU timeout); the log's tail is printed
#   2      usage error or unreadable log
set -euo pipefail

here=$(cd "$(dirname -- "$0")" && pwd)
(($# == 1)) || {
	echo "usage: $0 LOGFILE" >&2
	exit 2
}
log=$1
[[ -r $log ]] || {
	echo "guest-status: cannot read $log" >&2
	exit 2
}

clean=$(tr -d '\r' <"$log")
status_line=$(grep -E '^syslet-init: (exit status|killed by signal|failed to start)' <<<"$clean" | tail -n 1 || true)

if [[ -z $status_line ]]; then
	echo "guest-status: no exit status in $log; its last lines:"
	tail -n 25 <<<"$clean" | sed 's/^/  | /'
else
	awk '
		/^# syslet-init: running in / { on = 1; next }
		/^syslet-init: (exit status|killed by signal|failed to start)/ { on = 0 }
		on && !/^\[ *[0-9]+\.[0-9]+\] / { print }
	' <<<"$clean"
fi

# Kernel splats, as the judge defines them.
"$here/judge.sh" "$log" guest-run 2>/dev/null | grep -F ': splat: ' |
	sed 's/^judge: guest-run: splat: /guest-status: kernel splat: /' || true

rc=125
if [[ $status_line =~ exit\ status\ ([0-9]+) ]]; then
	rc=${BASH_REMATCH[1]}
elif [[ $status_line =~ killed\ by\ signal\ ([0-9]+) ]]; then
	rc=$((128 + BASH_REMATCH[1]))
elif [[ -n $status_line ]]; then
	rc=127 # failed to start, like a shell's "command not found"
fi
shown=${status_line#syslet-init: }
echo "guest-run: ${shown:-no exit status} (exit $rc)"
exit "$rc"
