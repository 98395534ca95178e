#!/usr/bin/env python3
"""Seeds N incidents through the JSON API (keep-alive, one connection per worker).

Half are closed-out shapes (declared + a few events), so the dashboard and the
log have realistic logs to fold. Usage: seed.py BASE_URL TOKEN N
"""
import http.client
import json
import sys
import threading
import urllib.parse

base, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
u = urllib.parse.urlparse(base)
H = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def worker(lo, hi):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(lo, hi):
        body = {"name": f"seed-{i}", "severity": "critical" if i % 3 else "high",
                "customer_facing": i % 2 == 0, "base_sha": "a" * 40}
        c.request("POST", "/api/v1/incidents", json.dumps(body), H)
        r = c.getresponse()
        data = r.read()
        if r.status != 201:
            sys.exit(f"seed failed: {r.status} {data[:200]!r}")
        inc = json.loads(data)["incident"]["id"]
        sha = f"{i:040x}"
        ev = {"expected_version": 1, "events": [
            {"type": "pushed", "sha": sha, "commits": [], "diff": {"files": ["a"], "lines_added": 1, "lines_removed": 1}},
            {"type": "pr_opened", "number": i + 1, "url": f"local://pr/{i + 1}"},
            {"type": "note", "text": f"seeded incident {i}"},
        ]}
        c.request("POST", f"/api/v1/incidents/{inc}/events", json.dumps(ev), H)
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            sys.exit(f"seed append failed: {r.status} {data[:200]!r}")


workers = 4
step = (n + workers - 1) // workers
ts = [threading.Thread(target=worker, args=(k * step, min(n, (k + 1) * step))) for k in range(workers)]
for t in ts:
    t.start()
for t in ts:
    t.join()
