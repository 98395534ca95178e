#!/usr/bin/env python3
"""Prints the results table of bench/gitflow/run.sh from its per-run TSV.

    report.py RUNS_TSV FILES COMMITS DEVELOP_COMMITS

RUNS_TSV lines: contender, run, start_s, finish_s, ship_s, backport_s
(contenders gitflow, floor, hotfix and, when measured, hotfix1push = `hotfix ship --backport`;
ship/backport are "-" except for the hotfix ones).
"""

import statistics
import sys

NAMES = {"gitflow": "git-flow", "hotfix": "hotfix", "floor": "floor", "hotfix1push": "hotfix-1push"}


def main():
    tsv, files, commits, dev = sys.argv[1], *map(int, sys.argv[2:5])
    rows = {}
    for line in open(tsv, encoding="utf-8"):
        c, _run, start, finish, ship, backport = line.rstrip("\n").split("\t")
        r = rows.setdefault(c, {"start": [], "finish": [], "total": [], "ship": [], "backport": []})
        r["start"].append(float(start))
        r["finish"].append(float(finish))
        r["total"].append(float(start) + float(finish))
        if ship != "-":
            r["ship"].append(float(ship))
            r["backport"].append(float(backport))
    missing = [c for c in ("gitflow", "hotfix", "floor") if c not in rows]
    if missing:
        sys.exit(f"report.py: no runs for {', '.join(missing)}")
    runs = len(rows["hotfix"]["start"])
    med = {c: {k: (statistics.median(v) if v else None) for k, v in r.items()} for c, r in rows.items()}

    out = []
    p = out.append
    p(f"hotfix vs git-flow vs bare-plumbing floor: median wall seconds of {runs} runs each")
    p(f"repository: {files} files + 3, {commits} commits on main, develop {dev} commits ahead; "
      f"bare remote on the same disk")
    p("start  = git-flow: git flow hotfix start | floor: fetch + branch | hotfix: hotfix start")
    p("finish = merge to main + merge to develop + push | git-flow: git flow hotfix finish -p |")
    p("         floor: 2x (merge-tree + commit-tree) + 1 atomic push | hotfix: hotfix ship + hotfix backport")
    p("")
    p(f"{'phase':<8}{'git-flow':>10}{'hotfix':>10}{'floor':>10}{'hotfix/git-flow':>17}{'hotfix/floor':>14}")
    for phase in ("start", "finish", "total"):
        g, h, f = (med[c][phase] for c in ("gitflow", "hotfix", "floor"))
        p(f"{phase:<8}{g:>10.3f}{h:>10.3f}{f:>10.3f}{h / g:>16.2f}x{h / f:>13.2f}x")
    p("")
    p(f"hotfix finish split (median): ship {med['hotfix']['ship']:.3f} s + backport {med['hotfix']['backport']:.3f} s")
    if "hotfix1push" in rows:
        p("")
        p("hotfix ship --backport (merge to main + develop in one atomic push; no separate backport):")
        p(f"{'phase':<8}{'hotfix ship --backport':>24}{'/git-flow':>11}{'/floor':>9}")
        for phase in ("start", "finish", "total"):
            g, h, f = (med[c][phase] for c in ("gitflow", "hotfix1push", "floor"))
            p(f"{phase:<8}{h:>24.3f}{h / g:>10.2f}x{h / f:>8.2f}x")
    p("")
    p("spread (min-max):")
    for c in [c for c in NAMES if c in rows]:
        r = rows[c]
        p(f"  {NAMES[c]:<12} start {min(r['start']):.3f}-{max(r['start']):.3f}  "
          f"finish {min(r['finish']):.3f}-{max(r['finish']):.3f}")
    p("")
    for c in [c for c in ("hotfix", "hotfix1push") if c in rows]:
        for phase in ("finish", "total"):
            g, h, f = (med[x][phase] for x in ("gitflow", c, "floor"))
            ok1 = "met" if h <= 0.5 * g else "NOT met"
            ok2 = "met" if h <= 1.5 * f else "NOT met"
            p(f"target, {NAMES[c]:<12} {phase:<6}: <= 0.5x git-flow: {ok1} ({h / g:.2f}x); "
              f"<= 1.5x floor: {ok2} ({h / f:.2f}x)")
    print("\n".join(out))


if __name__ == "__main__":
    main()
