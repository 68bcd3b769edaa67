"""Bad input never crashes `pglab check`: each unreadable or unparsable piece is one diagnostic,
and everything else in the tree is still checked."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pglab.lab.check.config import Config
from pglab.lab.check.engine import run
from pglab.lab.cli import main

HIT = "SELECT id FROM messages WHERE body ILIKE '%x%' LIMIT 5;\n"


def check_tree(tree: Path):
    return run([str(tree)], Config(), use_cache=False)


def test_random_bytes_truncated_sql_and_non_utf8(tmp_path: Path) -> None:
    generator = random.Random(1234)
    for index in range(20):
        (tmp_path / f"noise{index}.sql").write_bytes(generator.randbytes(generator.randrange(1, 4000)))
        (tmp_path / f"noise{index}.py").write_bytes(generator.randbytes(generator.randrange(1, 4000)))
    (tmp_path / "truncated.sql").write_text("SELECT id, body FROM messages WHERE conversation_id = $1 AND (body LIKE;\n"
                                            + HIT + "CREATE TABLE t (id int")
    (tmp_path / "latin1.sql").write_bytes("SELECT 'café' FROM t;".encode("latin-1"))
    (tmp_path / "good.sql").write_text(HIT)
    (tmp_path / "bad.py").write_text("def f(:\n    conn.execute('SELECT 1')\n")
    (tmp_path / "odd.py").write_text("conn.execute('SELECT * FROM t WHERE a = %(x)s AND b = :y AND c = $3 AND ')\n"
                                     "conn.execute(f'{x}')\nconn.execute('INSERT INTO')\n")
    result = check_tree(tmp_path)
    kinds = {diagnostic.kind for diagnostic in result.diagnostics}
    assert "internal-error" not in kinds, [d for d in result.diagnostics if d.kind == "internal-error"]
    assert {"unparsable", "unreadable"} <= kinds
    assert any(d.path and d.path.endswith("latin1.sql") and d.kind == "unreadable" for d in result.diagnostics)
    assert any(d.path and d.path.endswith("bad.py") and d.line == 1 for d in result.diagnostics)
    # the good statement after the truncated one, and the good file, are still checked
    hits = {(Path(f.path).name, f.line) for f in result.findings if f.id == "ilike_scan"}
    assert {("good.sql", 1), ("truncated.sql", 2)} <= hits


def test_deeply_nested_expressions(tmp_path: Path) -> None:
    depth = 5000
    (tmp_path / "deep.sql").write_text("SELECT " + "(" * depth + "1" + ")" * depth + " FROM t;\n"
                                       + "SELECT " + " + ".join(["a"] * 20000) + " FROM t;\n" + HIT)
    (tmp_path / "deep.py").write_text("x = " + "[" * 300 + "]" * 300 + "\n")
    (tmp_path / "long.py").write_text("def f(conn):\n    conn.execute(" + " + ".join(["'SELECT 1'"] * 5000) + ")\n"
                                      "    return " + " + ".join(["1"] * 100000) + "\n")
    result = check_tree(tmp_path)
    assert "internal-error" not in {d.kind for d in result.diagnostics}
    assert ("deep.sql", 3) in {(Path(f.path).name, f.line) for f in result.findings}


def test_ten_megabyte_files(tmp_path: Path) -> None:
    size = 10 * 1024 * 1024
    (tmp_path / "big.sql").write_text("SELECT '" + "x" * size + "' FROM t;\n" + HIT)
    (tmp_path / "big.py").write_text("# " + "y" * size + "\ndef f(conn):\n    conn.execute(\"" + HIT.strip()
                                     + "\")\n")
    result = check_tree(tmp_path)
    assert "internal-error" not in {d.kind for d in result.diagnostics}
    assert {("big.sql", 2), ("big.py", 3)} <= {(Path(f.path).name, f.line) for f in result.findings}


def test_cli_reports_diagnostics_without_crashing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "noise.sql").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "half.sql").write_text("SELECT FROM WHERE;")
    code = main(["check", "--no-cache", "--format", "json", "."])
    document = json.loads(capsys.readouterr().out)
    assert code == 0 and document["findings"] == []
    assert sorted(d["path"] for d in document["diagnostics"]) == ["half.sql", "noise.sql"]
