"""`pglab check` on a repository it does not trust: nothing in the repository runs.

The cache lives in the checked tree (`.pglab_cache/`), so a repository can commit one. It is
read as data only (JSON, validated field by field): a crafted pickle never executes, and a
corrupt, foreign or tampered cache is ignored with a note, then rewritten.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

APP = ("def search(conn, term):\n"
       "    sql = \"SELECT id FROM messages WHERE body ILIKE %s LIMIT 20\"\n"
       "    return conn.execute(sql, (f\"%{term}%\",)).fetchall()\n")


class _Payload:
    """Unpickling this runs `open(marker, "w")`: what an attacker's cache file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def pglab_check(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pglab.lab.cli", "check", "--format", "json", *args, "."],
                          cwd=project, capture_output=True, text=True, timeout=120,
                          env={key: value for key, value in os.environ.items() if key != "PGLAB_CACHE_DIR"})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / ".pglab_cache").mkdir()
    return tmp_path


def test_a_crafted_pickle_cache_never_runs(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    marker = tmp_path_factory.mktemp("outside") / "marker"
    payload = pickle.dumps({"key": "anything", "entries": _Payload(marker)})
    assert not marker.exists()
    for name in ("check.pickle", "check.json"):  # the old cache's name, and the new one's
        (project / ".pglab_cache" / name).write_bytes(payload)
    result = pglab_check(project)
    assert not marker.exists(), "the repository's cache file ran code"
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [f["id"] for f in json.loads(result.stdout)["findings"]] == ["ilike_scan"]
    assert "check.pickle" in result.stderr and "ignored the cache" in result.stderr


@pytest.mark.parametrize("content", [
    b"",
    b"\x00\xff garbage",
    b'{"format": "pglab-check-cache", "version": 1, "key": "x", "entries": ',  # truncated
    b"[1, 2, 3]",
    b'{"format": "someone-else", "version": 1}',
    b'{"format": "pglab-check-cache", "version": 99, "key": "x", "entries": {}}',
], ids=["empty", "binary", "truncated", "array", "foreign", "future-version"])
def test_a_corrupt_or_foreign_cache_is_ignored_with_a_note(project: Path, content: bytes) -> None:
    clean = pglab_check(project, "--no-cache")
    (project / ".pglab_cache" / "check.json").write_bytes(content)
    result = pglab_check(project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["findings"] == json.loads(clean.stdout)["findings"]
    assert result.stderr.startswith("pglab: note: ignored the cache") and result.stderr.count("\n") == 1
    # ...and replaced by a valid one, which the next run reads without a word
    document = json.loads((project / ".pglab_cache" / "check.json").read_text())
    assert (document["format"], list(document["entries"])) == ("pglab-check-cache", ["app.py"])
    assert pglab_check(project).stderr == ""


def _tampered(project: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = project / ".pglab_cache" / "check.json"
    document = json.loads(path.read_text())
    [entry] = document["entries"].values()
    change(entry)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize("change", [
    lambda entry: entry.update(statements="1"),
    lambda entry: entry.update(ddl=[["CreateStmt", {}, 1]]),
    lambda entry: entry["diagnostics"].append({"kind": 1, "message": "x"}),
    lambda entry: next(iter(entry["findings"].values()))[0]["finding"].update(line="2"),
    lambda entry: next(iter(entry["findings"].values()))[0]["finding"].update(evidence=["not", "a", "dict"]),
    lambda entry: next(iter(entry["findings"].values())).append({"finding": None}),
], ids=["statements", "ddl", "diagnostic", "line", "evidence", "finding"])
def test_a_tampered_entry_invalidates_the_cache(project: Path, change) -> None:  # type: ignore[no-untyped-def]
    first = pglab_check(project)
    assert first.stderr == ""
    _tampered(project, change)
    result = pglab_check(project)
    assert "ignored the cache" in result.stderr and "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    assert document["findings"] == json.loads(first.stdout)["findings"]
    assert document["summary"]["cached_files"] == 0


def test_the_cache_is_versioned_json(project: Path) -> None:
    pglab_check(project)
    document = json.loads((project / ".pglab_cache" / "check.json").read_text())
    assert (document["format"], document["version"]) == ("pglab-check-cache", 1)
    assert list(document["entries"]) == ["app.py"]
    assert not (project / ".pglab_cache" / "check.pickle").exists()
