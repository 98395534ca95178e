#!/usr/bin/env python3
"""Streams a synthetic repository history to stdout in `git fast-import` format.

    gen.py FILES COMMITS DEVELOP_COMMITS PORT | git fast-import --quiet

- `main`: COMMITS commits. The first adds FILES small files in nested
  directories (src/mNN/dNN/fNNNNN.txt), `app/fix.txt` (the only file the
  benchmark's hotfix changes) and a `hotfix.toml` whose health URL is
  http://127.0.0.1:PORT/health; each later commit modifies two src files.
- `develop`: main plus DEVELOP_COMMITS commits that touch `develop/` and a few
  src files, never `app/fix.txt`, so both merges of the hotfix are clean.

Deterministic: the same arguments give the same commits (same shas).
"""

import sys

FILLER = "".join(f"line {n:03d} of a small source file used by the hotfix benchmark\n" for n in range(4))

HOTFIX_TOML = """\
# Written by bench/gitflow/gen.py: the hotfix benchmark's configuration.
[team]
tech_leads = ["lead@example.com"]

[policy.critical]
response = "immediate"
tech_leads = 1
reviewers = 0
preview = false
smoke = false
area_checks = false

[deploy]
provider = "command"
production = "true"
rollback = "true"
health_url = "http://127.0.0.1:{port}/health"
watch = "0"

[notify]
console = false
file = false
"""


def path_of(i: int) -> str:
    return f"src/m{i // 1000:02d}/d{(i // 50) % 20:02d}/f{i:05d}.txt"


def main() -> None:
    files, commits, develop_commits, port = (int(a) for a in sys.argv[1:5])
    if files < 1 or commits < 1:
        sys.exit("gen.py: FILES and COMMITS must be at least 1")
    out = sys.stdout.buffer
    w = out.write
    t0 = 1_700_000_000
    mark = 0

    def data(text: str) -> None:
        b = text.encode()
        w(b"data %d\n" % len(b))
        w(b)
        w(b"\n")

    def commit(branch: str, when: int, msg: str, changes, parent=None) -> int:
        nonlocal mark
        mark += 1
        w(b"commit refs/heads/%s\nmark :%d\n" % (branch.encode(), mark))
        w(b"author Bench Author <author@example.com> %d +0000\n" % when)
        w(b"committer Bench Author <author@example.com> %d +0000\n" % when)
        data(msg)
        if parent is not None:
            w(b"from :%d\n" % parent)
        for path, text in changes:
            w(b"M 100644 inline %s\n" % path.encode())
            data(text)
        return mark

    # Commit 1: the whole tree.
    first = [(path_of(i), f"file {i}\n{FILLER}") for i in range(files)]
    first.append(("app/fix.txt", "status = broken\n"))
    first.append(("hotfix.toml", HOTFIX_TOML.format(port=port)))
    first.append(("README.md", "Synthetic repository for bench/gitflow.\n"))
    last = commit("main", t0, "initial import\n", first)

    # Commits 2..COMMITS: two files each, spread over the tree.
    for k in range(1, commits):
        a = (k * 7919) % files
        b = (k * 104729 + 13) % files
        changes = [(path_of(a), f"file {a}\nrevision {k}\n{FILLER}")]
        if b != a:
            changes.append((path_of(b), f"file {b}\nrevision {k}\n{FILLER}"))
        last = commit("main", t0 + 60 * k, f"change {k}\n", changes, last)

    # develop: a few commits ahead of main, away from app/fix.txt.
    dev = last
    for j in range(develop_commits):
        s = (j * 331 + 7) % files
        dev = commit(
            "develop",
            t0 + 60 * (commits + j),
            f"develop feature {j}\n",
            [
                (f"develop/feature-{j}.txt", f"feature {j}\n"),
                (path_of(s), f"file {s}\ndevelop change {j}\n{FILLER}"),
            ],
            dev,
        )
    w(b"done\n")
    out.flush()


if __name__ == "__main__":
    main()
