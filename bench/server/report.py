#!/usr/bin/env python3
"""Turns the bench results into a markdown table with ratios to /healthz."""
import sys

path, duration, conns, incidents = sys.argv[1:5]
rows = {}
extra = []
for line in open(path):
    parts = line.split()
    if not parts:
        continue
    kv = dict(p.split("=", 1) for p in parts[1:])
    if "p50" in kv:
        rows[parts[0]] = kv
    else:
        extra.append(line.strip())

print(f"wrk: 2 threads, {conns} connections, {duration} per run; dashboard with {incidents} incidents.\n")
print("| store | endpoint | p50 ms | p99 ms | req/s | p50 / healthz p50 | non-2xx |")
print("|---|---|---|---|---|---|---|")
# Stores in the order they ran (sqlite, postgres-single, postgres-poolN).
backends = list(dict.fromkeys(name.split(".", 1)[0] for name in rows))
for backend in backends:
    base = rows.get(f"{backend}.healthz")
    if not base:
        continue
    for ep, label in (("healthz", "GET /healthz (baseline)"), ("alerts", "POST /api/v1/alerts/alertmanager"),
                      ("dashboard", "GET / (dashboard)"), ("api_list", "GET /api/v1/incidents")):
        r = rows.get(f"{backend}.{ep}")
        if not r:
            continue
        ratio = float(r["p50"]) / float(base["p50"]) if float(base["p50"]) > 0 else float("nan")
        print(f"| {backend} | {label} | {float(r['p50']):.2f} | {float(r['p99']):.2f} | {float(r['rps']):.0f} | {ratio:.1f}x | {r['non2xx']} |")
print()
for e in extra:
    print(f"- {e}")
