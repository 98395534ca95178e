#!/usr/bin/env python3
"""Reads wrk --latency output on stdin; prints `NAME p50_ms p99_ms rps non2xx`."""
import re
import sys

name = sys.argv[1]
text = sys.stdin.read()


def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    if not m:
        return float("nan")
    x, u = float(m.group(1)), m.group(2)
    return x / 1000 if u == "us" else x * 1000 if u == "s" else x


lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
print(name, "p50=%.3f" % ms(lat.get("50", "")), "p99=%.3f" % ms(lat.get("99", "")),
      "rps=%s" % (rps.group(1) if rps else "nan"),
      "non2xx=%s" % (non2xx.group(1) if non2xx else "0"),
      "errors=%s" % (errors.group(1).replace(" ", "") if errors else "none"))
