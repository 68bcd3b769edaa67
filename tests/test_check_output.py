"""What `pglab check` shows and keeps: per-file ignores (with defaults for test code), one finding
per rule per line, the severity, plain words instead of Python reprs, the schema it read in every
format, fixes in the user's own names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pglab.lab.check.config import Config
from pglab.lab.check.engine import run
from pglab.lab.cli import main
from pglab.lab.core.findings import Finding
from pglab.lab.core.report import render
from tests.cli import assert_one_line_error, run_pglab

CONNECT = 'import psycopg\n\n\ndef open_db():\n    return psycopg.connect("dbname=app")\n'
SCHEMA = """\
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, placed_at timestamptz NOT NULL);
"""


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check", "--no-cache", *args])
    return code, capsys.readouterr().out


def found(capsys: pytest.CaptureFixture[str], *args: str) -> list[tuple[str, str]]:
    _, out = check(capsys, "--format", "json", *args)
    return sorted((item["id"], item["path"]) for item in json.loads(out)["findings"])


def test_connection_rules_are_off_in_test_code_by_default(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in ("app/db.py", "tests/test_db.py", "pkg/tests/helpers.py", "conftest.py", "app/db_test.py",
                 "benchmarks/load.py", "test_utils/db.py"):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(CONNECT)
    assert found(capsys, "--select", "missing_timeouts", ".") == [("missing_timeouts", "app/db.py"),
                                                                   ("missing_timeouts", "test_utils/db.py")]


def test_per_file_ignores_from_pyproject(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in ("scripts/backfill.py", "tests/test_db.py", "app/db.py"):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(CONNECT)
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n[tool.pglab]\n"
                                            "default-per-file-ignores = false\n"
                                            "per-file-ignores = {'scripts/*' = ['PGL016']}\n")
    assert found(capsys, "--select", "missing_timeouts", ".") == [("missing_timeouts", "app/db.py"),
                                                                   ("missing_timeouts", "tests/test_db.py")]


def test_an_unknown_id_in_per_file_ignores_is_a_usage_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.pglab]\nper-file-ignores = {'tests/*' = ['no_such_rule']}\n")
    (project / "app.py").write_text(CONNECT)
    result = run_pglab("check", "--no-cache", "app.py", env={"PGLAB_CACHE_DIR": str(project / ".cache")})
    assert result.returncode == 2
    assert_one_line_error(result, "no_such_rule")


def test_one_finding_per_rule_per_line(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(SCHEMA)
    (tmp_path / "queries.sql").write_text("SELECT id FROM orders WHERE customer_id = 1 LIMIT 5; "
                                          "SELECT id FROM orders WHERE customer_id = 2 LIMIT 5;\n")
    result = run([str(tmp_path)], Config(select=["missing_index"], per_file_ignores={}), use_cache=False)
    assert [(finding.id, finding.line) for finding in result.findings] == [("missing_index", 1)]


def test_text_shows_severity_grammar_and_the_schema(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "schema.sql").write_text(SCHEMA)
    (project / "queries.sql").write_text("SELECT id FROM orders WHERE customer_id = $1 ORDER BY placed_at LIMIT 5;\n")
    code, out = check(capsys, "--select", "sort_without_index", ".")
    lines = out.strip().splitlines()
    assert code == 1
    assert "PGL009 sort_without_index (warning) ORDER BY placed_at" in lines[1]
    assert lines[-2] == "schema: 1 table, 1 index from 1 file (schema.sql)"
    assert lines[-1] == "Found 1 finding in 2 files (1 warning)."


def test_fix_hints_use_the_users_names(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "schema.sql").write_text(SCHEMA)
    (project / "queries.sql").write_text(
        "SELECT id FROM orders WHERE customer_id = $1 ORDER BY placed_at LIMIT 5;\n"
        "SELECT id FROM orders WHERE customer_id = $1 ORDER BY placed_at DESC LIMIT 5 OFFSET $2;\n"
        "SELECT id FROM orders WHERE placed_at > $1;\n")
    _, out = check(capsys, "--format", "json", ".")
    hints = {(item["id"], item["line"]): item["fix_hint"] for item in json.loads(out)["findings"]}
    assert hints[("sort_without_index", 1)] == "CREATE INDEX ON orders (customer_id, placed_at)"
    assert "WHERE placed_at < :last_placed_at ORDER BY placed_at DESC LIMIT n" in hints[("offset_pagination", 2)]
    assert "WHERE id > :last_id ORDER BY id LIMIT n" in hints[("unbounded_results", 3)]  # the primary key
    assert not any("conversation" in hint or "created_at" in hint for hint in hints.values()), hints


def test_the_per_row_rewrite_is_offered_only_when_every_row_gets_the_same_values(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text('''\
def close_all(conn, ids):
    for ticket_id in ids:
        conn.execute("UPDATE tickets SET state = 'closed' WHERE id = %s", (ticket_id,))


def reprice(conn, rows):
    for row in rows:
        conn.execute("UPDATE products SET price = %s WHERE id = %s", (row.price, row.id))
''')
    result = run([str(tmp_path)], Config(select=["per_row_update"], per_file_ignores={}), use_cache=False)
    same, different = sorted(result.findings, key=lambda finding: finding.line or 0)
    assert same.rewrite == "UPDATE tickets SET state = 'closed' WHERE id = ANY($1)"
    assert different.rewrite is None
    assert different.fix_hint == ("send every item's key and new values as arrays in one statement: UPDATE products "
                                  "SET price = v.price FROM unnest($1, $2) AS v(id, price) WHERE products.id = v.id")


def test_the_schema_is_reported_in_every_format(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "schema.sql").write_text(SCHEMA)
    (project / "queries.sql").write_text("SELECT id FROM orders WHERE placed_at > $1;\n")
    described = "1 table, 1 index from 1 file (schema.sql)"
    _, out = check(capsys, "--format", "json", ".")
    assert json.loads(out)["summary"]["schema"] == {"source": "ddl", "tables": 1, "indexes": 1,
                                                    "files": ["schema.sql"], "description": described}
    _, out = check(capsys, "--format", "sarif", ".")
    assert json.loads(out)["runs"][0]["properties"]["schema"]["description"] == described
    _, out = check(capsys, "--format", "github", ".")
    assert f"::notice title=pglab schema::schema: {described}" in out.splitlines()
    (project / "schema.sql").unlink()
    code, out = check(capsys, ".")
    assert "no-schema no CREATE TABLE found" in out and "schema: 0 tables, 0 indexes (no DDL found)" in out
    assert code == 1  # the unbounded SELECT is still reported; the warning itself changes no exit code


def test_text_output_has_no_python_reprs() -> None:
    finding = Finding("missing_index", "PGL001", "a message", "warning", None, None, None, "", None, None,
                      {"columns": ["user_id", "created_at"], "statement": {"queryid": 42, "calls": 7}})
    out = io.StringIO()
    render([finding], "text", stream=out)
    text = out.getvalue()
    assert "columns: user_id, created_at" in text and "statement: queryid=42, calls=7" in text
    assert "{'" not in text and "['" not in text


def test_catalog_rejects_an_unknown_category_and_shows_what_the_lab_runs() -> None:
    result = run_pglab("catalog", "--category", "no-such-category")
    assert_one_line_error(result, "no-such-category", "valid categories:", "indexing")
    assert result.returncode == 2
    listing = run_pglab("catalog", "--json")
    paths = Path(__file__).parent.parent / "lab" / "trial" / "service" / "paths"
    with_code = {path.stem for path in paths.glob("*.py") if path.stem != "__init__"}
    assert {entry["id"] for entry in json.loads(listing.stdout) if entry["lab"]} == with_code


def test_a_hint_without_known_columns_names_no_one_elses(tmp_path: Path) -> None:
    (tmp_path / "queries.sql").write_text("SELECT sku FROM inventory WHERE warehouse = $1;\n")
    config = Config(select=["unbounded_results"], per_file_ignores={})
    [finding] = run([str(tmp_path)], config, use_cache=False).findings
    assert finding.fix_hint == ("add a LIMIT and page with a keyset cursor: ORDER BY a unique key of inventory and "
                                "continue after the last row seen: WHERE key > :last_key ORDER BY key LIMIT n")
