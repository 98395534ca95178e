#!/usr/bin/env python3
"""Summarises GIT_TRACE2_EVENT files: which git processes a command spawned.

    trace2.py LABEL=FILE[:WALL_SECONDS] ...

For each file, lists the git processes the tool started itself (for
`git flow`, the ones its shell script started), in start order: the time the
tool spent before starting it since the previous one ended ("gap": the tool's
own work between git calls), its wall time, and the git processes it spawned
in turn (push -> pack-objects, receive-pack, ...). With WALL_SECONDS (the
tool's wall time in that traced run) it also prints the time outside git.
"""

import json
import sys
from collections import OrderedDict
from datetime import datetime


def shorten(argv, width=76):
    """The call without `git` itself, long object ids and multi-line messages."""
    out = []
    for a in argv[1:]:
        if len(a) >= 40 and all(c in "0123456789abcdef" for c in a[:40]):
            a = a[:8] + "…" + a[40:]
        elif "=" in a and len(a.split("=", 1)[1]) >= 40:
            k, v = a.split("=", 1)
            a = k + "=" + shorten(["", v], 60)
        if "\n" in a:
            a = a.split("\n", 1)[0] + "…"
        if a.startswith("/"):
            a = "<path>"
        out.append(a)
    s = " ".join(out)
    return s if len(s) <= width else s[: width - 1] + "…"


def epoch(t):
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


def load(path):
    procs = OrderedDict()  # sid -> {argv, time, elapsed, code, name}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            sid = e.get("sid")
            if not sid:
                continue
            p = procs.setdefault(
                sid, {"argv": None, "time": None, "elapsed": None, "code": None, "name": None}
            )
            ev = e.get("event")
            if ev == "start":
                p["argv"] = e.get("argv", [])
                p["time"] = epoch(e["time"])
            elif ev == "cmd_name" and p["name"] is None:
                p["name"] = e.get("name")
            elif ev in ("exit", "atexit") and p["elapsed"] is None:
                p["elapsed"] = e.get("t_abs")
                p["code"] = e.get("code")
    return {s: p for s, p in procs.items() if p["argv"] and p["time"] is not None}


def depth(sid):
    return sid.count("/")


def summarise(label, path, wall):
    procs = load(path)
    rows = [(s, p) for s, p in procs.items() if depth(s) == 0]
    # `git flow` is a dashed external command: its script's git calls are the rows.
    expanded = []
    for s, p in rows:
        if p["name"] == "_run_dashed_":
            expanded += [(k, q) for k, q in procs.items() if k.startswith(s + "/") and depth(k) == 1]
        else:
            expanded.append((s, p))
    rows = sorted(expanded, key=lambda sp: sp[1]["time"])
    nested = sum(1 for s, p in procs.items() if any(s.startswith(r + "/") for r, _ in rows))
    print(f"\n== {label}: {len(rows)} git calls by the tool, {nested} more git processes spawned by those ==")
    print(f"  {'#':>3} {'gap ms':>7} {'git ms':>8}  call")
    total = gaps = 0.0
    prev_end = None
    by_cmd = OrderedDict()
    for n, (sid, p) in enumerate(rows, 1):
        el = p["elapsed"] or 0.0
        gap = 0.0 if prev_end is None else max(p["time"] - prev_end, 0.0)
        prev_end = p["time"] + el
        total += el
        gaps += gap
        kids = OrderedDict()
        for k, q in procs.items():
            if k.startswith(sid + "/"):
                name = q["name"] or (q["argv"][1] if len(q["argv"]) > 1 else "?")
                if name.startswith("_run_"):
                    name = q["argv"][1] if len(q["argv"]) > 1 else name
                k_n, k_ms = kids.get(name, (0, 0.0))
                kids[name] = (k_n + 1, k_ms + (q["elapsed"] or 0.0) * 1000)
        kid_s = ", ".join(
            (f"{k}×{n} {ms:.1f}" if n > 1 else f"{k} {ms:.1f}") for k, (n, ms) in kids.items()
        )
        code = "" if p["code"] in (0, None) else f"  [exit {p['code']}]"
        gap_s = "" if n == 1 else f"{gap * 1000:7.1f}"
        print(f"  {n:3d} {gap_s:>7} {el * 1000:8.1f}  {shorten(p['argv'])}{code}")
        if kid_s:
            print(f"  {'':3} {'':7} {'':8}    └ spawned (ms): {kid_s}")
        cmd = p["name"] or (p["argv"][1] if len(p["argv"]) > 1 else "?")
        c = by_cmd.setdefault(cmd, [0, 0.0])
        c[0] += 1
        c[1] += el
    line = f"  in git: {total * 1000:.1f} ms; between git calls: {gaps * 1000:.1f} ms"
    if wall is not None:
        rest = max(wall - total - gaps, 0.0)
        line += (f"; tool wall time {wall * 1000:.1f} ms, of which outside git "
                 f"{max(wall - total, 0.0) * 1000:.1f} ms ({rest * 1000:.1f} ms before the first / after the last call)")
    print(line)
    print("  by subcommand: " + ", ".join(
        f"{k} ×{v[0]} {v[1] * 1000:.0f} ms" for k, v in sorted(by_cmd.items(), key=lambda kv: -kv[1][1])))


def main():
    for arg in sys.argv[1:]:
        label, rest = arg.split("=", 1)
        wall = None
        head, sep, tail = rest.rpartition(":")
        if sep:
            try:
                wall = float(tail)
                rest = head
            except ValueError:
                pass
        summarise(label, rest, wall)


if __name__ == "__main__":
    main()
