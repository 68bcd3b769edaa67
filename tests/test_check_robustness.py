"""Bad input never crashes `pglab check`: each unreadable or unparsable piece is one diagnostic,
and everything else in the tree is still checked."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pglab.lab.check import engine, filecheck
from pglab.lab.check.config import Config
from pglab.lab.check.engine import run
from pglab.lab.check.sqltext import FileLocator, split_statements, stream_statements
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
    assert document["findings"] == []
    assert sorted(d["path"] for d in document["diagnostics"]) == ["half.sql", "noise.sql"]
    assert code == 1  # input that was not analysed is never a clean run


# A subprocess with its address space capped: the whole file would not fit (pglab <= 0.1 held
# every parsed statement of it and died, or reported MemoryError as a clean run), one statement does.
MEMORY_LIMITED = """
import resource, sys
limit = int(sys.argv[1]) * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pglab.lab.cli import main
sys.exit(main(["check", "--no-cache", "--format", "json", sys.argv[2]]))
"""


def test_huge_sql_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    statement = "INSERT INTO events (kind, payload) VALUES ('k', '" + "x" * 2000 + "');\n"
    count = 32_000  # 65 MB
    with open(tmp_path / "huge.sql", "w") as handle:
        handle.write("CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text);\n")
        for _ in range(count):
            handle.write(statement)
        handle.write("SELECT id FROM messages WHERE body ILIKE '%x%' LIMIT 5; -- the end\n")
    result = subprocess.run([sys.executable, "-c", MEMORY_LIMITED, "256", str(tmp_path / "huge.sql")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PGLAB_CHECK_JOBS": "1"})
    assert result.returncode == 1, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["summary"]["statements"] == count + 2
    assert document["diagnostics"] == []
    [finding] = document["findings"]
    assert (finding["id"], finding["line"]) == ("ilike_scan", count + 2)
    assert finding["source"].endswith("LIMIT 5; -- the end")


def test_streamed_file_keeps_positions_suppressions_and_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """A file over the streaming threshold gives the findings it gives when read whole."""
    body = ("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, note text);\n"
            "SELECT 1; SELECT id FROM orders WHERE note ILIKE '%a%' LIMIT 5;\n"
            "-- pglab: ignore[ilike_scan]\n"
            "SELECT id FROM orders WHERE note ILIKE '%b%' LIMIT 5;\n"
            "SELECT $$;$$, 'it''s; fine', id FROM orders WHERE customer_id = $1 LIMIT 5;\n"
            "SELECT * FROM orders WHERE broken (;\n"
            "/* ; */ SELECT id FROM orders WHERE note LIKE '%c%'\n  LIMIT 5;\n")
    (tmp_path / "whole.sql").write_text(body)
    whole = check_tree(tmp_path)
    monkeypatch.setattr(engine, "LARGE_FILE", 10)
    monkeypatch.setattr(filecheck, "CHUNK", 7)  # statements, quotes and comments cut across chunks
    streamed = check_tree(tmp_path)
    assert [(f.id, f.line, f.column, f.source) for f in streamed.findings] == \
        [(f.id, f.line, f.column, f.source) for f in whole.findings]
    assert {(f.id, f.line) for f in whole.findings} >= {("ilike_scan", 2), ("ilike_scan", 7), ("missing_index", 5)}
    assert [(d.kind, d.line) for d in streamed.diagnostics] == [(d.kind, d.line) for d in whole.diagnostics]
    assert streamed.statements == whole.statements == 6  # the broken one is a diagnostic


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    result = subprocess.run([sys.executable, "-m", "pglab.lab.cli", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"pglab {version('pglab')}\n", "")


VERSION_IMPORTS = """
import sys
from pglab.lab.cli import main
try:
    main(["--version"])
except SystemExit as stop:
    print(" ".join(sorted(sys.modules)), stop.code, file=sys.stderr)
"""


def test_version_imports_no_command() -> None:
    """`pglab --version` is what scripts and bug reports run first: it cost a second when it
    built every command's parser (the lab's imports: psycopg, plotly)."""
    result = subprocess.run([sys.executable, "-c", VERSION_IMPORTS], capture_output=True, text=True, timeout=60)
    *modules, code = result.stderr.split()
    assert code == "0" and result.stdout.startswith("pglab "), result.stderr[-2000:]
    assert not [name for name in modules if name.startswith(("psycopg", "plotly", "pglab.lab.cli."))]


LIGHT = """
import sys
from pglab.lab.cli import main
code = main(["check", "--no-cache", "--format", "json", sys.argv[1]])
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_check_imports_only_what_it_needs(tmp_path: Path) -> None:
    """Start-up is part of every pre-commit run: `pglab check` must not import the database
    driver, the lab, the advisor, Markdown rendering or the process pool it does not use."""
    (tmp_path / "q.sql").write_text(HIT)
    result = subprocess.run([sys.executable, "-c", LIGHT, str(tmp_path / "q.sql")], capture_output=True, text=True,
                            timeout=60)
    assert json.loads(result.stdout)["findings"], result.stderr[-2000:]
    modules = set(result.stderr.split())
    heavy = {"psycopg", "psycopg_pool", "rich.markdown", "multiprocessing", "sqlglot", "locust", "uvicorn"}
    assert not heavy & modules
    assert not [name for name in modules if name.startswith(("pglab.lab.runtime", "pglab.lab.trial",
                                                               "pglab.lab.postgres", "pglab.lab.plugin"))]


PIPED_TEXT = """
import sys
from pglab.lab.cli import main
main(["check", "--no-cache", sys.argv[1]])
print(" ".join(sorted(sys.modules)), file=sys.stderr)
"""


def test_text_to_a_pipe_imports_no_rich_even_for_a_bracket(tmp_path: Path) -> None:
    """Piped text output is laid out without rich, also when a finding's source line holds a `[`
    (an array subscript), which rich's markup would have to escape."""
    (tmp_path / "q.sql").write_text("SELECT * FROM orders WHERE tags[1] = 'x' ORDER BY created_at DESC;\n")
    plain = {name: value for name, value in os.environ.items() if name not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    result = subprocess.run([sys.executable, "-c", PIPED_TEXT, str(tmp_path / "q.sql")], capture_output=True,
                            text=True, timeout=60, env=plain)
    assert "tags[1] = 'x'" in result.stdout, result.stderr[-2000:]
    assert not [name for name in result.stderr.split() if name == "rich" or name.startswith("rich.")]


def _summary(result) -> tuple:  # type: ignore[no-untyped-def]
    return ([finding.as_json() for finding in result.findings], [d.as_json() for d in result.diagnostics],
            result.statements, result.files)


def test_worker_processes_give_the_serial_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files shared out between forked workers, first parsed, then checked against a schema one
    of them holds, and then with some findings cached against an older schema."""
    fixtures = Path(__file__).parent / "fixtures"
    tree = tmp_path / "tree"
    shutil.copytree(fixtures, tree)
    (tree / "zz_more.sql").write_text(HIT * 50 + "SELECT * FROM orders WHERE customer_id = $1 LIMIT 5;\n")
    monkeypatch.setattr(engine, "PARALLEL_MIN", 0)

    def both(config: Config) -> tuple:  # type: ignore[type-arg]
        monkeypatch.setenv("PGLAB_CHECK_JOBS", "1")
        serial = _summary(run([str(tree)], Config(), use_cache=False))
        monkeypatch.setenv("PGLAB_CHECK_JOBS", "2")
        parallel = run([str(tree)], config)
        assert _summary(parallel) == serial
        return parallel

    config = Config(cache_dir=tmp_path / "cache")
    first = both(config)
    assert first.findings and first.cached_files == 0
    (tree / "zz_orders.sql").write_text("CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint);\n"
                                        "CREATE INDEX ON orders (customer_id);\n")
    again = both(config)  # a new schema: every cached file is re-checked, shared out again
    assert again.cached_files == 0 and _summary(again) != _summary(first)


def test_streaming_splits_like_the_whole_text_wherever_the_chunks_are_cut() -> None:
    parts = ["SELECT 1", "SELECT 'a;b'", "-- c;\nSELECT 2", "SELECT $$x;y$$", "SELECT $tag$ ; $tag$",
             "/* ; */ SELECT 3", "SELECT 'it''s;'", "\n\nSELECT\n4", "SELECT '" + "z;" * 300 + "'",
             "SELECT 6 -- " + "q;" * 100 + "\n"]
    generator = random.Random(4)
    for _ in range(300):
        text = "".join(generator.choice(parts) + generator.choice([";", ";\n", "; "])
                       for _ in range(generator.randrange(1, 30)))
        locator = FileLocator(text)
        whole = [(piece.text, *locator.position(piece.start)) for piece in split_statements(text)]
        cuts = sorted(generator.sample(range(len(text) + 1), min(len(text), generator.randrange(0, 60))))
        chunks = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert [(item.text, item.line, item.column) for item in stream_statements(iter(chunks))] == whole, chunks
