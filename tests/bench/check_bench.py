"""Benchmark `pglab check`.

    python tests/bench/check_bench.py [REGRESS_SQL_DIR] [--statements 10000] [--files 1000] [--seed 7] [--runs 5]

1. End to end, cold, as a user runs it (a new process each time, interpreter start-up and output
   included, no cache): `pglab check` against squawk (`squawk-cli`, when on PATH or named by
   $SQUAWK; skipped with a message otherwise) and against a bare pglast parse of the same
   statements in a new Python process, on PostgreSQL's regression suite
   (`src/test/regress/sql`: the directory argument or $PGLAB_REGRESS_SQL; skipped when absent)
   and on a generated SQL corpus. Only files that are UTF-8 are given to all three (squawk
   stops at the first file that is not). Wall seconds (median of --runs) and CPU seconds of the
   process and its children: the machine may be shared, and CPU time shows the work done.
   Python runs with its modules' bytecode compiled, as an installed package has it (pip compiles
   it at install): an untimed first run of each command writes it to a scratch directory
   (PYTHONPYCACHEPREFIX), whatever PYTHONDONTWRITEBYTECODE says, since with that set and no
   bytecode every run would compile pglab's sources again (about 0.1 s no installed copy pays).
2. In-process, on one core (`PGLAB_CHECK_JOBS=1`): statements/s on the generated SQL corpus,
   files/s on a generated Python codebase, pglast's bare parse rate on the same statements, and
   the speed-up of a second run on the unchanged tree (the content-keyed cache).

Every figure printed is measured in this run.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pglast
from pglast import parser

from pglab.lab.check.config import Config
from pglab.lab.check.engine import run
from pglab.lab.check.sqltext import split_statements

TABLES = {
    "users": ["id", "email", "name", "created_at", "team_id", "status"],
    "messages": ["id", "conversation_id", "author_id", "body", "created_at", "tokens"],
    "conversations": ["id", "title", "owner_id", "last_message_at"],
    "notifications": ["id", "user_id", "message_id", "read", "created_at"],
    "orders": ["id", "customer_id", "total", "state", "created_at"],
    "events": ["id", "kind", "payload", "created_at", "user_id"],
}
DDL = """\
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text, created_at timestamptz,
                    team_id bigint, status text);
CREATE TABLE conversations (id bigserial PRIMARY KEY, title text, owner_id bigint REFERENCES users (id),
                            last_message_at timestamptz);
CREATE TABLE messages (id bigserial PRIMARY KEY, conversation_id bigint REFERENCES conversations (id),
                       author_id bigint REFERENCES users (id), body text, created_at timestamptz, tokens int);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at);
CREATE TABLE notifications (id bigserial PRIMARY KEY, user_id bigint REFERENCES users (id), message_id bigint,
                            read boolean, created_at timestamptz);
CREATE INDEX notifications_user_idx ON notifications (user_id);
CREATE INDEX notifications_user_created_idx ON notifications (user_id, created_at);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint, total numeric, state text, created_at timestamptz);
CREATE TABLE events (id bigserial PRIMARY KEY, kind text, payload jsonb, created_at timestamptz, user_id bigint);
CREATE INDEX events_lower_kind_idx ON events (lower(kind));
"""


def _statement(rng: random.Random) -> str:
    table = rng.choice(list(TABLES))
    columns = TABLES[table]
    column = rng.choice(columns)
    other = rng.choice(columns)
    value = rng.choice(["$1", "42", "'x'", "now() - interval '1 day'", "$2"])
    shape = rng.randrange(14)
    if shape == 0:
        picked = ", ".join(rng.sample(columns, 3))
        return f"SELECT {picked} FROM {table} WHERE {column} = {value} LIMIT {rng.randrange(1, 100)}"
    if shape == 1:
        return (f"SELECT t.{other}, count(*) FROM {table} t WHERE t.{column} > {value} "
                f"GROUP BY t.{other} ORDER BY 2 DESC LIMIT 10")
    if shape == 2:
        return (f"SELECT m.id, u.name FROM messages m JOIN users u ON u.id = m.author_id "
                f"WHERE m.conversation_id = $1 ORDER BY m.created_at DESC LIMIT {rng.randrange(10, 60)}")
    if shape == 3:
        return f"SELECT * FROM {table} WHERE {column} ILIKE '%' || $1 || '%'"
    if shape == 4:
        return f"SELECT id FROM {table} ORDER BY {column} LIMIT 20 OFFSET {rng.choice(['$3', '40', '100000'])}"
    if shape == 5:
        return ("SELECT o.id, (SELECT sum(o2.total) FROM orders o2 WHERE o2.customer_id = o.customer_id "
                "AND o2.created_at <= o.created_at) FROM orders o WHERE o.state = $1 LIMIT 100")
    if shape == 6:
        return f"INSERT INTO {table} ({column}, {other}) VALUES ($1, $2) RETURNING id"
    if shape == 7:
        return f"UPDATE {table} SET {other} = $1 WHERE {column} = $2"
    if shape == 8:
        return f"DELETE FROM {table} WHERE created_at < now() - interval '{rng.randrange(1, 365)} days'"
    if shape == 9:
        return (f"WITH recent AS (SELECT id, {column} FROM {table} WHERE created_at > $1 LIMIT 500) "
                f"SELECT r.id FROM recent r WHERE r.id NOT IN (SELECT user_id FROM notifications WHERE read "
                f"AND created_at > now() - interval '{rng.randrange(1, 90)} days') LIMIT 50")
    if shape == 10:
        return f"SELECT id FROM {table} WHERE lower({column}::text) = lower($1) LIMIT 1"
    if shape == 11:
        return (f"UPDATE {table} SET {other} = {other} + 1 WHERE id = ANY($1) "
                f"AND {column} IS NOT NULL AND id IN (SELECT id FROM {table} WHERE {column} = $2 LIMIT 100)")
    if shape == 12:
        return (f"SELECT {column}, {other} FROM {table} WHERE {column} BETWEEN $1 AND $2 "
                f"AND {other} IN (1, 2, 3, 4) AND (status = 'a' OR status = 'b') LIMIT 25")
    return f"SELECT count(*) FROM {table} WHERE {column} = {value}"


PYTHON_TEMPLATES = [
    '''async def list_{n}(conn, key):
    rows = await conn.fetch("SELECT id, {col} FROM {table} WHERE {col} = $1 LIMIT 50", key)
    out = []
    for row in rows:
        out.append(await conn.fetchrow("SELECT * FROM users WHERE id = $1", row["id"]))
    return out
''',
    '''def update_{n}(conn, ids):
    for item in ids:
        conn.execute("UPDATE {table} SET {col} = %s WHERE id = %s", (item, item))
''',
    '''def search_{n}(session, term):
    return session.execute(text("SELECT id FROM {table} WHERE {col} ILIKE :t LIMIT 20"), {{"t": f"%{{term}}%"}}).all()
''',
    '''QUERY_{n} = (
    "SELECT id, {col} FROM {table} "
    "WHERE {col} = %(value)s "
    "ORDER BY id DESC LIMIT 20"
)


def fetch_{n}(cur, value):
    cur.execute(QUERY_{n}, {{"value": value}})
    return cur.fetchall()
''',
    '''async def stream_{n}(pool, key):
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute("SELECT id FROM {table} WHERE {col} = %s LIMIT 100", (key,))
            async for row in cur:
                yield row
''',
    '''def spend_{n}(conn, key, amount):
    value = conn.execute("SELECT {col} FROM {table} WHERE id = %s", (key,)).fetchone()[0]
    conn.execute("UPDATE {table} SET {col} = %s WHERE id = %s", (value - amount, key))
''',
    '''def helper_{n}(values):
    return sorted(value * 2 for value in values if value)
''',
]


def make_sql_corpus(root: Path, count: int, rng: random.Random) -> list[str]:
    statements = [_statement(rng) for _ in range(count)]
    (root / "000_schema.sql").write_text(DDL)
    per_file = 100
    for index in range(0, count, per_file):
        chunk = statements[index : index + per_file]
        (root / f"{index // per_file + 1:03d}_queries.sql").write_text(";\n".join(chunk) + ";\n")
    return statements


def make_python_corpus(root: Path, count: int, rng: random.Random) -> None:
    (root / "schema.sql").write_text(DDL)
    for index in range(count):
        package = root / f"pkg{index % 20:02d}"
        package.mkdir(exist_ok=True)
        parts = ["from sqlalchemy import text\n\n"]
        for number in range(rng.randrange(3, 7)):
            table = rng.choice(list(TABLES))
            template = rng.choice(PYTHON_TEMPLATES)
            parts.append(template.format(n=f"{index}_{number}", table=table, col=rng.choice(TABLES[table][1:]))
                         + "\n\n")
        (package / f"module_{index:04d}.py").write_text("".join(parts).rstrip() + "\n")


def timed(function, repeat: int = 1) -> float:
    """Median CPU seconds of this process: the machine is shared, and the claim is per core."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return statistics.median(times)


BARE_PARSE = """
import sys
from pglast import parser
from pglab.lab.check.sqltext import split_statements
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        for piece in split_statements(handle.read()):
            try:
                parser.parse_sql_json(piece.text)
            except parser.ParseError:
                pass
"""


def utf8_files(root: Path) -> list[str]:
    files = []
    for path in sorted(root.rglob("*.sql")):
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        files.append(str(path))
    return files


def cold(command: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system, children included) of `command`,
    after one untimed run (it writes the bytecode an installed package has)."""
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def end_to_end(name: str, files: list[str], runs: int, bytecode: Path) -> None:
    squawk = os.environ.get("SQUAWK") or shutil.which("squawk")
    statements = run(files, Config(), use_cache=False).statements
    print(f"{name}: {len(files)} UTF-8 files, {statements} statements pglab parsed; cold, end to end, "
          f"median of {runs} runs")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(bytecode)
    pglab = [sys.executable, "-m", "pglab.lab.cli", "check", "--no-cache", *files]
    rows = [("pglab check (all cores)", pglab, env),
            ("pglab check (PGLAB_CHECK_JOBS=1)", pglab, {**env, "PGLAB_CHECK_JOBS": "1"}),
            ("pglast bare parse", [sys.executable, "-c", BARE_PARSE, *files], env)]
    if squawk:
        rows.append(("squawk " + subprocess.run([squawk, "--version"], capture_output=True, text=True)
                     .stdout.strip().removeprefix("squawk "), [squawk, *files], env))
    for label, command, command_env in rows:
        wall, cpu = cold(command, runs, command_env)
        print(f"  {label:34} {wall:6.2f} s wall {cpu:6.2f} s CPU")
    if not squawk:
        print("  squawk: not installed (pip install squawk-cli, or SQUAWK=/path/to/squawk): skipped")


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--statements", type=int, default=10_000)
    options.add_argument("--files", type=int, default=1_000)
    options.add_argument("--seed", type=int, default=7)
    options.add_argument("--runs", type=int, default=5, help="runs of each end-to-end command (median)")
    options.add_argument("regress", nargs="?", default=os.environ.get("PGLAB_REGRESS_SQL"),
                         help="PostgreSQL's src/test/regress/sql (or $PGLAB_REGRESS_SQL)")
    args = options.parse_args()
    rng = random.Random(args.seed)
    workspace = Path(tempfile.mkdtemp(prefix="pglab-check-bench-"))
    try:
        sql_root, py_root = workspace / "sql", workspace / "py"
        sql_root.mkdir()
        py_root.mkdir()
        statements = make_sql_corpus(sql_root, args.statements, rng)
        make_python_corpus(py_root, args.files, rng)
        texts = [piece.text for path in sorted(sql_root.glob("*.sql")) for piece in split_statements(path.read_text())]
        if args.regress and Path(args.regress).is_dir():
            end_to_end(f"PostgreSQL regression suite ({args.regress})", utf8_files(Path(args.regress)), args.runs,
                       workspace / "bytecode")
        else:
            print("PostgreSQL regression suite: no directory given (argument or $PGLAB_REGRESS_SQL): skipped")
        end_to_end("Generated SQL corpus", utf8_files(sql_root), args.runs, workspace / "bytecode")
        os.environ["PGLAB_CHECK_JOBS"] = "1"  # the in-process figures below are per core

        bare_json = timed(lambda: [parser.parse_sql_json(text) for text in texts], repeat=3)
        sample = texts[:2000]  # building pglast's Python nodes is slow: time a sample, scale it
        bare_nodes = timed(lambda: [pglast.parse_sql(text) for text in sample]) * len(texts) / len(sample)
        config = Config(cache_dir=workspace / "cache-sql")
        cold = timed(lambda: run([str(sql_root)], Config(), use_cache=False), repeat=3)
        sql_result = run([str(sql_root)], config)  # fills the cache
        warm = timed(lambda: run([str(sql_root)], config), repeat=3)

        py_config = Config(cache_dir=workspace / "cache-py")
        py_cold = timed(lambda: run([str(py_root)], Config(), use_cache=False), repeat=3)
        py_result = run([str(py_root)], py_config)
        py_warm = timed(lambda: run([str(py_root)], py_config), repeat=3)

        count = sql_result.statements
        print(f"SQL corpus: {len(statements)} generated statements in {sql_result.files} files "
              f"({count} statements parsed), {len(sql_result.findings)} findings")
        print(f"  pglast parse_sql (Python nodes):   {len(texts) / bare_nodes:10,.0f} statements/s")
        print(f"  pglast parse_sql_json (bare parse): {len(texts) / bare_json:10,.0f} statements/s")
        print(f"  pglab check, no cache:              {count / cold:10,.0f} statements/s ({cold:.2f} s)")
        print(f"  pglab check, unchanged tree:        {count / warm:10,.0f} statements/s ({warm:.3f} s), "
              f"{cold / warm:.1f}x faster than without the cache")
        print(f"Python corpus: {py_result.files} files, {py_result.statements} SQL statements found, "
              f"{len(py_result.findings)} findings")
        print(f"  pglab check, no cache:              {py_result.files / py_cold:10,.0f} files/s "
              f"({py_result.statements / py_cold:,.0f} statements/s, {py_cold:.2f} s)")
        print(f"  pglab check, unchanged tree:        {py_result.files / py_warm:10,.0f} files/s ({py_warm:.3f} s), "
              f"{py_cold / py_warm:.1f}x faster than without the cache")
        print("(times are CPU seconds of this process, median of 3 runs; pglab check runs in-process, "
              "without the interpreter start-up of the command line)")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
