# SPDX-License-Identifier: Apache-2.0
"""Resident pages of a running binary, by ELF section and by the Swift module of the symbols on
each page: `resident_pages.py PID BINARY` (root: reads /proc/PID/pagemap)."""
import sys, struct, subprocess, bisect, re, collections
pid, binpath = int(sys.argv[1]), sys.argv[2]
# symbols: (addr, size, name), demangle module prefix
syms = []
for line in subprocess.run(["nm", "-S", "--defined-only", binpath], capture_output=True, text=True).stdout.splitlines():
    p = line.split()
    if len(p) == 4:
        syms.append((int(p[0], 16), int(p[1], 16), p[3]))
syms.sort()
addrs = [s[0] for s in syms]
def module(name):
    m = re.match(r'^_?\$s(\d+)([A-Za-z_]\w*)', name)
    if m:
        n = int(m.group(1)); return m.group(2)[:n]
    if name.startswith('$ss') or name.startswith('_swift') or name.startswith('swift_'): return 'Swift stdlib/runtime'
    if name.startswith('$s'): return 'Swift stdlib/runtime'
    if name.startswith('_ZN') or name.startswith('_Z'): return 'C++ (runtime/ICU)'
    return 'C/other'
secs = []
for line in subprocess.run(["readelf", "-SW", binpath], capture_output=True, text=True).stdout.splitlines():
    m_ = re.match(r'\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)', line)
    if m_ and int(m_.group(2), 16): secs.append((int(m_.group(2), 16), int(m_.group(3), 16), m_.group(1)))
def section(v):
    for a, sz, n in secs:
        if a <= v < a + sz: return n
    return "?"
bysec = collections.Counter()
maps = [l.split() for l in open(f"/proc/{pid}/maps") if l.rstrip().endswith(binpath.split('/')[-1])]
pm = open(f"/proc/{pid}/pagemap", "rb")
base = int(maps[0][0].split('-')[0], 16) - int(maps[0][2], 16)
agg = collections.Counter(); total = 0
for m in maps:
    lo, hi = (int(x, 16) for x in m[0].split('-'))
    for a in range(lo, hi, 4096):
        pm.seek(a // 4096 * 8); e = struct.unpack('Q', pm.read(8))[0]
        if not e >> 63 & 1: continue
        total += 4
        v = a - base
        i = bisect.bisect_right(addrs, v + 4095) - 1
        # attribute page to modules of symbols overlapping it
        mods = collections.Counter()
        j = i
        while j >= 0 and syms[j][0] + max(syms[j][1], 1) > v - 65536 and syms[j][0] >= v - 65536:
            s0, sz, nm_ = syms[j]
            ov = min(s0 + sz, v + 4096) - max(s0, v)
            if ov > 0: mods[module(nm_)] += ov
            j -= 1
        bysec[section(v)] += 4
        key = (m[1], mods.most_common(1)[0][0] if mods else '(no symbol: tables/data)')
        agg[key] += 4
print("resident kB in binary:", total)
print("by section:", bysec.most_common(12))
for k, v in agg.most_common(25): print(v, k)
