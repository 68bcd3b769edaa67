"""`pglab check`: static analysis of a codebase for the catalogue's anti-patterns.

The pipeline, one module per step:

- `sqltext`: splitting SQL text into statements, turning every driver's placeholders (and the
  holes Python string-building leaves) into `$n`, mapping offsets back to file positions;
- `pytext`: reading SQL out of Python expressions (literals, implicit concatenation, f-strings,
  `%` and `.format`, names bound to constants, `text()`/`sql.SQL()`), character by character;
- `extract`: files to `Query` objects (parsed statements, each with its `DbCall` when Python runs
  it) and the parsed Python module; `sqlforms` (psql scripts, psycopg2's `IN %s`) and `pyschema`
  (Alembic operations, SQLAlchemy tables and models, read as DDL) feed it;
- `schema`: the schema model, from the DDL in the checked files or from a live catalog;
  `ddlorder` decides the order the files' DDL applies in (dependencies, migration versions, no
  teardown scripts);
- `walk`: rule discovery (the `check_*` functions of each `antipatterns/<id>.py`) and the one walk
  over each statement that hands nodes to the rules that asked for them;
- `engine`: the two passes (read everything and build the schema, then run the rules), inline
  suppressions, the content-keyed `cache`, `config` from `[tool.pglab]` and `settle` (per-file
  ignores, one finding per rule per line);
- helpers the rules share: `sqlnodes` (reading parse trees), `shape` (how many rows can a SELECT
  return?), `flow` (loops, transactions, held connections, sleeps, HTTP calls), `loops`,
  `pools` (where connections and pools are created), `rewrite` (mechanical fixes).

A rule's hooks, by function name in its catalogue module:

    check_sql_<NodeType>(node, ctx)   every libpg_query node of that type (ctx.query: the statement)
    check_query(query, ctx)           every statement, with query.call when Python runs it
    check_py_<AstType>(node, ctx)     every Python node of that type (ctx.module: the file)
    check_schema(schema, ctx)         once, with the finished schema model

and `ctx.report(at, message, rewrite=..., hint=...)` records a finding at a SQL node, a Python
node or a schema object's origin (`hint`: the fix in the user's own table and column names).
"""
