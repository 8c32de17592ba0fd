#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Sampling profiler for a guest under QEMU TCG, from the outside.

TCG gives the guest no hardware counters, and a tracing kernel changes
what it measures.  This samples every vCPU's instruction pointer through
QEMU's monitor (QMP "human-monitor-command": "info registers -a") while
the guest runs, and maps kernel addresses to functions with System.map.
Under -icount (qemu/run-qemu.sh with QEMU_ICOUNT) the host time a vCPU
spends is close to proportional to the guest instructions it executes, so
the shares are shares of instructions.  Idle vCPUs (in the kernel's idle
loop) are counted apart.

Usage:
  qemu/profile.py --qmp SOCKET --system-map System.map [--hz 200]
                  [--user-binary PROGRAM]
                  [--start-after SECONDS | --log FILE --marker TEXT]
                  [--top 40] [--out FILE]

Start QEMU with QEMU_EXTRA="-qmp unix:SOCKET,server=on,wait=off", then this
script; it samples until QEMU exits (or the socket closes), then prints
the hottest functions, user space as one line "[user]".
"""

import argparse
import bisect
import collections
import json
import re
import socket
import sys
import time


def load_map(path, lines=None):
    addrs, names = [], []
    with (open(path) if lines is None else lines) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[1] not in "tTwW":
                continue
            addrs.append(int(parts[0], 16))
            names.append(parts[2])
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    return [addrs[i] for i in order], [names[i] for i in order]


class Qmp:
    def __init__(self, path, wait):
        deadline = time.time() + wait
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.s.makefile("rw")
        self.read()  # greeting
        self.cmd({"execute": "qmp_capabilities"})

    def read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, c):
        self.f.write(json.dumps(c) + "\n")
        self.f.flush()
        return self.read()

    def hmp(self, line):
        r = self.cmd({"execute": "human-monitor-command",
                      "arguments": {"command-line": line}})
        return r.get("return", "")


RIP = re.compile(r"RIP=([0-9a-f]{16})")
CPL = re.compile(r"CPL=(\d)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qmp", required=True)
    ap.add_argument("--system-map", required=True)
    ap.add_argument("--hz", type=float, default=200)
    ap.add_argument("--start-after", type=float, default=0)
    ap.add_argument("--log", help="the console log QEMU writes")
    ap.add_argument("--marker", help="count samples once the log has this")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--out")
    ap.add_argument("--user-binary",
                    help="a static user program: name its functions too "
                         "(via nm --demangle), not just [user]")
    a = ap.parse_args()

    addrs, names = load_map(a.system_map)
    uaddrs, unames = [], []
    if a.user_binary:
        import io
        import subprocess
        nm = subprocess.run(["nm", "--demangle", a.user_binary],
                            capture_output=True, text=True, check=True)
        uaddrs, unames = load_map(None, io.StringIO(nm.stdout))
    q = Qmp(a.qmp, wait=30)
    t0 = time.time()
    counts = collections.Counter()
    total = 0
    period = 1.0 / a.hz
    started = False
    try:
        while True:
            time.sleep(period)
            out = q.hmp("info registers -a")
            if time.time() - t0 < a.start_after:
                continue
            if a.marker and not started:
                try:
                    with open(a.log, errors="replace") as f:
                        started = a.marker in f.read()
                except OSError:
                    pass
                if not started:
                    continue
            for rip_s, cpl_s in zip(RIP.findall(out), CPL.findall(out)):
                rip = int(rip_s, 16)
                if cpl_s == "3":
                    i = bisect.bisect_right(uaddrs, rip) - 1
                    sym = "[user] " + unames[i] if i >= 0 else "[user]"
                    sym = sym.replace(" ", "_", 1)
                else:
                    i = bisect.bisect_right(addrs, rip) - 1
                    sym = names[i] if i >= 0 else hex(rip)
                counts[sym] += 1
                total += 1
    except (EOFError, OSError, json.JSONDecodeError):
        pass
    idle = sum(c for s, c in counts.items()
               if s in ("default_idle", "native_safe_halt", "pv_native_safe_halt",
                        "default_idle_call", "do_idle", "cpu_idle_poll",
                        "acpi_safe_halt", "mwait_idle", "intel_idle"))
    lines = ["samples %d (vCPU samples), idle %d (%.1f%%)"
             % (total, idle, 100.0 * idle / max(total, 1))]
    busy = max(total - idle, 1)
    lines.append("%-44s %8s %7s" % ("function", "samples", "busy%"))
    for sym, c in counts.most_common(a.top):
        lines.append("%-44s %8d %6.1f%%" % (sym, c, 100.0 * c / busy))
    text = "\n".join(lines)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
            for sym, c in counts.most_common():
                f.write("%s %d\n" % (sym, c))
    print(text)


if __name__ == "__main__":
    sys.exit(main())
