#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Instructions per function of a trace from qemu/itrace.sh.

Usage: itrace-summary.py TRACE.pcs System.map [USERPROG]

TRACE.pcs holds one instruction pointer (hex) per executed instruction.
Prints the total, then the functions by instruction count; writes the
sequence of functions (name and run length) to TRACE.seq.
"""

import bisect
import collections
import subprocess
import sys


def symbols(lines, types="tTwW"):
    pairs = []
    for line in lines:
        p = line.split(None, 2)
        if len(p) == 3 and p[1] in types:
            pairs.append((int(p[0], 16), p[2].strip()))
    pairs.sort()
    return [a for a, _ in pairs], [n for _, n in pairs]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    trace, smap = sys.argv[1], sys.argv[2]
    with open(smap) as f:
        ka, kn = symbols(f)
    ua, un = [], []
    if len(sys.argv) > 3:
        nm = subprocess.run(["nm", "--demangle", sys.argv[3]],
                            capture_output=True, text=True, check=True)
        ua, un = symbols(nm.stdout.splitlines())

    def name(pc):
        if pc >= 0xffff800000000000:
            i = bisect.bisect_right(ka, pc) - 1
            return kn[i] if i >= 0 else hex(pc)
        i = bisect.bisect_right(ua, pc) - 1
        return "[user] " + un[i][:70] if i >= 0 else "[user]"

    counts = collections.Counter()
    seq = []
    total = 0
    with open(trace) as f:
        for line in f:
            s = line.strip()
            try:
                pc = int(s, 16)
            except ValueError:
                continue
            n = name(pc)
            total += 1
            counts[n] += 1
            if seq and seq[-1][0] == n:
                seq[-1][1] += 1
            else:
                seq.append([n, 1])
    print("instructions: %d" % total)
    for n, c in counts.most_common(60):
        print("%8d  %s" % (c, n))
    out = trace.rsplit(".", 1)[0] + ".seq"
    with open(out, "w") as f:
        for n, c in seq:
            f.write("%6d  %s\n" % (c, n))


if __name__ == "__main__":
    main()
