"""Precision of `pglab check` on real open-source services nobody here wrote.

    python tests/bench/real_code_precision.py [CHECKOUTS_DIR] [--show-new]

The services and the commits their findings were triaged at are `REPOS` below. Every finding
pglab reported on them was read by hand and judged in `real_code_triage.csv` (TP: the
anti-pattern is there and matters; FP: it is not there, or cannot matter; debatable: the pattern
is there but whether it hurts depends on data sizes or intent nobody can see from the code),
with the reason.

With the checkouts at hand (a directory holding `owner+name/` trees, or the fetched mirrors
under /work/.mirror, read with `git` without touching them), pglab runs again at the pinned
commit with its default configuration and each finding is matched to its triaged row by
(repo, rule, path, line): findings nobody triaged and triaged rows no longer reported are
listed, so a rule change cannot pass unnoticed. Without them, the figures come from the CSV.

Precision per rule = TP / (TP + FP), debatable findings left out of both; the strict figure
counts them as false positives. Targets (issue 17): >= 90 % overall, no rule below 75 %.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from pglab.lab.check.config import load_config
from pglab.lab.check.engine import run

HERE = Path(__file__).parent
TRIAGE = HERE / "real_code_triage.csv"
MIRRORS = Path("/work/.mirror")
# owner/name -> the commit the triage was made at
REPOS = {
    "nsidnev/fastapi-realworld-example-app": "029eb7781c60d5f563ee8990a0cbfb79b244538c",  # asyncpg + aiosql
    "procrastinate-org/procrastinate": "f099a753730d5492bdebdc1c1f2796ffa5cf5671",  # psycopg 3, raw SQL files
    "metabrainz/listenbrainz-server": "0a119846de26bcaa48503b6b65634d80e977c3b1",  # psycopg2 + SQLAlchemy text()
}
VERDICTS = ("TP", "FP", "debatable")


def read_triage() -> list[dict[str, str]]:
    with TRIAGE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["verdict"] not in VERDICTS:
            raise SystemExit(f"{TRIAGE.name}: unknown verdict {row['verdict']!r} for {row['path']}:{row['line']}")
        if not row["reason"].strip():
            raise SystemExit(f"{TRIAGE.name}: no reason for {row['path']}:{row['line']}")
    return rows


def materialise(repo: str, commit: str, checkouts: Path | None, into: Path) -> Path | None:
    """A tree of the repo's .py and .sql files at `commit`: a checkout given on the command line,
    or the files read out of the fetched mirror (git reads only; the mirror is not changed)."""
    key = repo.replace("/", "+")
    if checkouts is not None and (checkouts / key).is_dir():
        return checkouts / key
    git_dir = MIRRORS / key / "repo"
    if not git_dir.is_dir():
        return None
    git = ["git", f"--git-dir={git_dir}"]
    listing = subprocess.run([*git, "ls-tree", "-r", "-z", commit], capture_output=True, check=False)
    if listing.returncode != 0:
        return None
    target = into / key
    for entry in listing.stdout.split(b"\0"):
        if not entry:
            continue
        meta, _, name = entry.partition(b"\t")
        path = name.decode("utf-8", "replace")
        if meta.split()[1] != b"blob" or not path.endswith((".py", ".sql")):
            continue
        blob = subprocess.run([*git, "cat-file", "blob", meta.split()[2].decode()], capture_output=True, check=False)
        if blob.returncode == 0:
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            (target / path).write_bytes(blob.stdout)
    return target


def rerun(tree: Path) -> set[tuple[str, str, int]]:
    """(rule, path, line) of every finding of a default `pglab check .` run in `tree`."""
    config = load_config(tree)
    config.root = tree
    previous = Path.cwd()
    try:
        os.chdir(tree)
        result = run(["."], config, use_cache=False)
    finally:
        os.chdir(previous)
    return {(finding.id, finding.path or "", finding.line or 0) for finding in result.findings}


def precision(counts: Counter[str]) -> tuple[str, str]:
    judged, strict = counts["TP"] + counts["FP"], counts["TP"] + counts["FP"] + counts["debatable"]
    main = f"{100 * counts['TP'] / judged:.0f} %" if judged else "-"
    return main, (f"{100 * counts['TP'] / strict:.0f} %" if strict else "-")


def report(rows: list[dict[str, str]]) -> bool:
    by_rule: dict[str, Counter[str]] = defaultdict(Counter)
    by_repo: dict[str, Counter[str]] = defaultdict(Counter)
    total: Counter[str] = Counter()
    for row in rows:
        by_rule[row["rule"]][row["verdict"]] += 1
        by_repo[row["repo"]][row["verdict"]] += 1
        total[row["verdict"]] += 1
    print(f"{'rule':<24} {'TP':>4} {'FP':>4} {'deb':>4}  precision  strict")
    for rule in sorted(by_rule):
        counts = by_rule[rule]
        main, strict = precision(counts)
        print(f"{rule:<24} {counts['TP']:>4} {counts['FP']:>4} {counts['debatable']:>4}  {main:>9}  {strict:>6}")
    main, strict = precision(total)
    print(f"{'overall':<24} {total['TP']:>4} {total['FP']:>4} {total['debatable']:>4}  {main:>9}  {strict:>6}")
    print()
    for repo in sorted(by_repo):
        main, strict = precision(by_repo[repo])
        print(f"{repo:<45} findings {sum(by_repo[repo].values()):>4}  precision {main:>5}  strict {strict:>5}")
    judged = total["TP"] + total["FP"]
    worst = min((counts["TP"] / (counts["TP"] + counts["FP"]) for counts in by_rule.values()
                 if counts["TP"] + counts["FP"]), default=1.0)
    return judged > 0 and total["TP"] / judged >= 0.90 and worst >= 0.75


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="?", type=Path, help="directory of owner+name/ checkouts")
    parser.add_argument("--show-new", action="store_true", help="list findings the CSV does not triage")
    args = parser.parse_args()
    rows = read_triage()
    triaged = {(row["repo"], row["rule"], row["path"], int(row["line"])) for row in rows}
    drift = False
    with tempfile.TemporaryDirectory(prefix="pglab-real-") as scratch:
        for repo, commit in REPOS.items():
            tree = materialise(repo, commit, args.checkouts, Path(scratch))
            if tree is None:
                print(f"{repo}: no checkout at hand, figures from the CSV only")
                continue
            found = {(repo, *finding) for finding in rerun(tree)}
            mine = {key for key in triaged if key[0] == repo}
            new, gone = sorted(found - mine), sorted(mine - found)
            print(f"{repo} @ {commit[:12]}: {len(found)} findings, {len(new)} not triaged, "
                  f"{len(gone)} triaged but no longer reported")
            for key in new if args.show_new else new[:10]:
                print(f"    new   {key[1]} {key[2]}:{key[3]}")
            for key in gone[:10]:
                print(f"    gone  {key[1]} {key[2]}:{key[3]}")
            drift |= bool(new or gone)
            if gone:  # figures describe what pglab reports now
                rows = [row for row in rows if (row["repo"], row["rule"], row["path"], int(row["line"])) not in gone]
    print()
    ok = report(rows)
    print(f"\ntargets (>= 90 % overall, no rule below 75 %): {'met' if ok else 'NOT met'}"
          + ("; the CSV and the current findings differ (above)" if drift else ""))
    return 0 if ok and not drift else 1


if __name__ == "__main__":
    sys.exit(main())
