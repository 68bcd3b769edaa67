"""`pglab check` as a user runs it: exit codes, output formats, configuration, suppressions, cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pglab.lab.cli import main
from tests.cli import assert_one_line_error, run_pglab

FIXTURES = Path(__file__).parent / "fixtures" / "check"

SEARCH = '''\
def search(conn, term):
    return conn.execute("SELECT id FROM messages WHERE body ILIKE %s LIMIT 20", (f"%{term}%",)).fetchall()
'''


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check", *args])
    return code, capsys.readouterr().out


def test_clean_tree_exits_0_with_one_line() -> None:
    result = run_pglab("check", "--no-cache", str(FIXTURES / "clean"))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("No anti-patterns found in 2 files"), result.stdout


def test_findings_exit_1_and_json_shape(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app.py").write_text(SEARCH)
    code, out = check(capsys, "--format", "json", "app.py")
    assert code == 1
    document = json.loads(out)
    assert set(document) >= {"findings", "summary"}
    [finding] = document["findings"]
    assert {key: finding[key] for key in ("id", "code", "path", "line", "column", "severity")} == {
        "id": "ilike_scan", "code": "PGL003", "path": "app.py", "line": 2, "column": 61, "severity": "warning"}
    assert "wildcard" in finding["message"] and finding["fix_hint"]
    assert document["summary"]["findings"] == 1 and document["summary"]["files"] == 1


def test_usage_errors_exit_2_with_one_line() -> None:
    assert_one_line_error(run_pglab("check", "--select", "no_such_rule", str(FIXTURES / "clean")), "no_such_rule")
    assert_one_line_error(run_pglab("check", "/no/such/path"), "no such file")
    result = run_pglab("check", "--format", "xml", str(FIXTURES / "clean"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_text_groups_by_file_with_source_and_fix(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app.py").write_text(SEARCH)
    code, out = check(capsys, "app.py")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "app.py"
    assert "2:61 PGL003 ilike_scan (warning)" in lines[1]  # the severity is shown
    assert "ILIKE %s LIMIT 20" in lines[2]  # the source line
    assert lines[3].strip().startswith("fix: ")
    assert out.strip().splitlines()[-1].startswith("Found 1 finding in 1 file (1 warning)")


def test_sarif_is_2_1_0_with_rules_and_locations(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app.py").write_text(SEARCH)
    code, out = check(capsys, "--format", "sarif", "app.py")
    assert code == 1
    log = json.loads(out)
    assert log["version"] == "2.1.0" and "sarif" in log["$schema"]
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "pglab check"
    assert run["tool"]["driver"]["rules"][0]["id"] == "PGL003"
    [result] = run["results"]
    assert result["ruleId"] == "PGL003" and result["level"] == "warning"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "app.py"
    assert location["region"]["startLine"] == 2 and location["region"]["startColumn"] == 61


def test_github_annotations(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app.py").write_text(SEARCH)
    code, out = check(capsys, "--format", "github", "app.py")
    assert code == 1
    assert out.startswith("::warning file=app.py,line=2,col=61,title=PGL003 ilike_scan::")
    lines = out.strip().splitlines()  # newlines inside the message are escaped: one line per annotation
    assert [line.split(" ", 1)[0] for line in lines] == ["::warning", "::notice", "::notice"]  # + no-schema, schema
    assert lines[-1] == "::notice title=pglab schema::schema: 0 tables, 0 indexes (no DDL found)"


def test_select_and_ignore_by_id_or_code(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app.py").write_text(SEARCH)
    assert check(capsys, "--ignore", "PGL003", "app.py")[0] == 0
    assert check(capsys, "--select", "ilike_scan", "app.py")[0] == 1
    assert check(capsys, "--select", "n_plus_one,PGL001", "app.py")[0] == 0


def test_pyproject_configuration(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app.py").write_text(SEARCH)
    (project / "vendored").mkdir()
    (project / "vendored" / "lib.sql").write_text("SELECT id FROM t WHERE name LIKE '%x' LIMIT 1;\n")
    (project / "pyproject.toml").write_text('[tool.pglab]\nignore = ["ilike_scan"]\nformat = "json"\n'
                                            'exclude = ["vendored/*"]\n')
    code, out = check(capsys, ".")
    assert code == 0
    assert json.loads(out)["summary"]["files"] == 1
    (project / "pyproject.toml").write_text('[tool.pglab]\nselct = ["x"]\n')
    assert_one_line_error(_run_in(project), "selct")


def _run_in(directory: Path):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pglab.lab.cli", "check", "."], capture_output=True, text=True,
                          cwd=directory, env={**os.environ}, timeout=60)


def test_inline_suppressions_and_unused_ones(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "app.py").write_text(
        "def search(conn, term):\n"
        "    return conn.execute(\"SELECT id FROM messages WHERE body ILIKE %s LIMIT 20\",  # pglab: ignore[PGL003]\n"
        "                        (f\"%{term}%\",)).fetchall()\n"
        "x = 1  # pglab: ignore[n_plus_one]\n")
    (project / "q.sql").write_text("-- pglab: ignore[ilike_scan]\n"
                                   "SELECT id FROM m WHERE b LIKE '%x' LIMIT 5;\n"
                                   "SELECT id FROM m WHERE b LIKE '%y' LIMIT 5;  -- pglab: ignore[offset_pagination]\n")
    code, out = check(capsys, "--format", "json", ".")
    document = json.loads(out)
    assert [(f["path"], f["line"]) for f in document["findings"]] == [("q.sql", 3)]
    unused = sorted((d["path"], d["line"]) for d in document["diagnostics"] if d["kind"] == "unused-suppression")
    assert unused == [("app.py", 4), ("q.sql", 3)]
    assert code == 1


def test_rewrites_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(capsys, "--no-cache", "--format", "json", "--select",
                      "not_in_subquery,counter_race,per_row_update,correlated_subquery,n_plus_one",
                      str(FIXTURES / "not_in_subquery"), str(FIXTURES / "counter_race"),
                      str(FIXTURES / "per_row_update"), str(FIXTURES / "correlated_subquery"),
                      str(FIXTURES / "n_plus_one"))
    rewrites = {(f["id"], f["line"]): f.get("rewrite") for f in json.loads(out)["findings"]}
    assert "NOT EXISTS" in rewrites[("not_in_subquery", 1)] and "bans.user_id = u.id" in \
        rewrites[("not_in_subquery", 3)].replace("\n", " ")
    assert "SET balance = balance + $" in rewrites[("counter_race", 7)]
    assert "WHERE id = ANY($1)" in rewrites[("per_row_update", 6)]
    window = "sum(l.amount) OVER (PARTITION BY l.account_id ORDER BY l.created_at)"
    assert window in rewrites[("correlated_subquery", 4)]
    assert "WHERE id = ANY(%s)" not in str(rewrites) and "= ANY($1)" in rewrites[("n_plus_one", 10)]


def test_second_run_is_served_from_the_cache(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIXTURES / "missing_index", project / "src")
    first = json.loads(check(capsys, "--format", "json", "src")[1])
    second = json.loads(check(capsys, "--format", "json", "src")[1])
    assert first["findings"] == second["findings"] and first["findings"]
    files = len([path for path in (project / "src").rglob("*") if path.suffix in (".py", ".sql")])
    assert first["summary"]["cached_files"] == 0 and second["summary"]["cached_files"] == files
    # a new index in the migration changes the schema: the other file's findings are recomputed
    with open(project / "src" / "schema.sql", "a") as handle:
        handle.write("CREATE INDEX ON messages (conversation_id);\n")
    third = json.loads(check(capsys, "--format", "json", "src")[1])
    assert third["summary"]["cached_files"] == 0
    assert not [f for f in third["findings"] if "conversation_id" in f["message"]]


def test_pre_commit_hook_definition() -> None:
    """The hook pre-commit installs (read as flat `key: value` lines: no YAML library needed)."""
    text = (Path(__file__).parent.parent / ".pre-commit-hooks.yaml").read_text()
    entries = [line.strip().lstrip("- ") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    hook = dict(entry.split(": ", 1) for entry in entries)
    assert hook["id"] == "pglab-check" and hook["entry"] == "pglab check" and hook["language"] == "python"
    assert hook["pass_filenames"] == "false" and hook["args"] == '["."]'  # the whole tree: schema from migrations
