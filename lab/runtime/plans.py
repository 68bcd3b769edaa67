"""EXPLAIN plans: getting one safely, walking it, and running the plan rules of `detectors/` over it.

A plan rule sees every node once, with the facts it needs already worked out (rows read, loops,
estimates when the plan was not analysed), so each rule in `detectors/<id>.py` stays a few lines
of judgement. Plans come from `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` when the statement may be
run, else from plain `EXPLAIN (FORMAT JSON)`; every rule must work on both, using estimates
(`Plan Rows`, costs) where the actual counts are missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pglast import parse_sql
from pglast.ast import CommonTableExpr, SelectStmt
from pglast.parser import ParseError
from psycopg.rows import dict_row

from pglab.lab.core.errors import UserError
from pglab.lab.core.findings import Finding
from pglab.lab.core.sql import INDEX_COLUMNS, leading_columns, short
from pglab.lab.runtime import registry
from pglab.lab.runtime.values import quote, untyped_literals

EXPLAIN_TIMEOUT_MS = 5000
SCAN_TYPES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan")


@dataclass
class Node:
    """One plan node, with the counts a rule needs whether or not the plan was analysed."""

    raw: dict[str, Any]
    path: str  # position in the tree ("0", "0.1", ...): names the node in evidence and supersession
    parent: Node | None
    loops: float  # actual loops, or the planner's implied number of executions
    analyzed: bool
    children: list[Node] = field(default_factory=list)
    # Plain plans give a parallel node's rows per worker; this is the planner's divisor (workers
    # plus the leader's share) that turns them into the rows of the whole team. 1 elsewhere, and in
    # analysed plans, whose loops already count the workers.
    workers: float = 1.0

    @property
    def type(self) -> str:
        return str(self.raw.get("Node Type", ""))

    @property
    def relation(self) -> str | None:
        return self.raw.get("Relation Name")

    @property
    def filter(self) -> str:
        return str(self.raw.get("Filter", ""))

    @property
    def is_scan(self) -> bool:
        return self.type.removeprefix("Parallel ") in SCAN_TYPES

    @property
    def rows(self) -> float:
        """Rows emitted per loop (actual when analysed, estimated otherwise)."""
        return float(self.raw.get("Actual Rows" if self.analyzed else "Plan Rows", 0) or 0)

    @property
    def rows_total(self) -> float:
        return self.rows * self.loops * self.workers

    @property
    def removed(self) -> float | None:
        """Rows the Filter threw away per loop; None when the plan was not analysed."""
        if not self.analyzed:
            return None
        return float(self.raw.get("Rows Removed by Filter", 0) or 0)

    def is_within(self, top: Node) -> bool:
        """Whether this node is `top` or lies in its subtree."""
        return self.path == top.path or self.path.startswith(top.path + ".")

    def excerpt(self) -> str:
        """The node as one line, the way EXPLAIN text shows it: evidence a reader recognises."""
        name = self.type
        if self.relation:
            alias = self.raw.get("Alias")
            name += f" on {self.relation}" + (f" {alias}" if alias and alias != self.relation else "")
        if self.raw.get("Index Name"):
            name += f" using {self.raw['Index Name']}"
        if self.raw.get("Subplan Name"):
            name = f"{self.raw['Subplan Name']}: {name}"
        raw = self.raw
        counts = f"cost={raw.get('Total Cost')} rows={raw.get('Plan Rows')} width={raw.get('Plan Width')}"
        if self.analyzed:
            counts += f"; actual rows={self.raw.get('Actual Rows')} loops={self.raw.get('Actual Loops')}"
            if "Rows Removed by Filter" in self.raw:
                counts += f" removed by filter={self.raw['Rows Removed by Filter']}"
        parts = [f"{name} ({counts})"]
        for key in ("Index Cond", "Recheck Cond", "Filter", "Sort Key", "Sort Method"):
            if key in self.raw:
                value = self.raw[key]
                parts.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        return " | ".join(parts)


@dataclass
class PlanView:
    """What a plan rule receives: the nodes plus what the catalog says about the tables in them."""

    nodes: list[Node]
    analyzed: bool
    table_rows: Mapping[str, float]
    indexed_columns: Mapping[str, frozenset[str]]  # relation -> columns leading a plain index

    def table_size(self, node: Node) -> float:
        """The table's row count: from the catalog when known, else what a full scan of it read."""
        if node.relation and node.relation in self.table_rows:
            return float(self.table_rows[node.relation])
        if node.type.endswith("Seq Scan") and node.removed is not None:
            return node.rows + node.removed
        return 0.0

    def removed_fraction(self, node: Node) -> tuple[float, float]:
        """(fraction of rows read that the Filter discarded, rows discarded over all loops).

        Estimated from the table size and the planner's row estimate when the plan has no actual
        counts, which is right for a sequential scan and conservative for the others."""
        if node.removed is not None:
            read = node.rows + node.removed
            return (node.removed / read if read else 0.0), node.removed * node.loops
        if not node.type.endswith("Seq Scan"):
            return 0.0, 0.0
        size = self.table_size(node)
        removed = max(size - node.rows * node.workers, 0.0)
        return (removed / size if size else 0.0), removed * node.loops

    def subplan(self, name: str, within: Node) -> Node | None:
        """The node that heads `SubPlan N` (as a Filter names it) inside `within`'s subtree."""
        for node in self.nodes:
            if node.raw.get("Subplan Name") == name and node.is_within(within):
                return node
        return None


def is_hashed_subplan(child: Mapping[str, Any], parent: Mapping[str, Any]) -> bool:
    """Whether a SubPlan is hashed: run once, its rows kept in a hash table that every outer row
    probes. Its parent's expressions name it `hashed SubPlan N`."""
    name = re.escape(str(child.get("Subplan Name", "")))
    return bool(name) and re.search(rf"hashed {name}\b", str(parent)) is not None


def _loops_of_child(parent: Node, child: dict[str, Any], siblings: list[dict[str, Any]]) -> float:
    """How often the planner expects a child to run: once per outer row on the inner side of a
    nested loop, once per parent row for a correlated SubPlan (a hashed one runs once), else as
    often as its parent."""
    relationship = child.get("Parent Relationship")
    if relationship == "Inner" and parent.type == "Nested Loop":
        outer = next((s for s in siblings if s.get("Parent Relationship") == "Outer"), None)
        return parent.loops * float(outer.get("Plan Rows", 1) if outer else 1)
    if relationship == "SubPlan" and not is_hashed_subplan(child, parent.raw):
        return parent.loops * max(float(parent.raw.get("Plan Rows", 1) or 1), 1.0)
    return parent.loops


def _parallel_divisor(parent: Node) -> float:
    """The planner's rows-per-worker divisor for a child of a Gather (its workers, plus what the
    leader contributes: 1 - 0.3 per worker), inherited below it; 1 outside parallel plans."""
    if parent.type in ("Gather", "Gather Merge"):
        planned = float(parent.raw.get("Workers Planned", 0) or 0)
        return planned + max(0.0, 1.0 - 0.3 * planned) if planned else 1.0
    return parent.workers


def walk(plan: Mapping[str, Any]) -> list[Node]:
    """Every node of a plan (the JSON EXPLAIN output's top object, or its "Plan"), parents first."""
    root_raw = plan.get("Plan", plan)
    analyzed = "Actual Loops" in root_raw
    root = Node(raw=dict(root_raw), path="0", parent=None,
                loops=float(root_raw.get("Actual Loops", 1) or 1), analyzed=analyzed)
    nodes = [root]
    pending = [root]
    while pending:
        node = pending.pop()
        children = node.raw.get("Plans", [])
        for index, raw in enumerate(children):
            loops = float(raw.get("Actual Loops", 0) or 0) if analyzed else _loops_of_child(node, raw, children)
            child = Node(raw=raw, path=f"{node.path}.{index}", parent=node, loops=loops, analyzed=analyzed,
                         workers=1.0 if analyzed else _parallel_divisor(node))
            node.children.append(child)
            nodes.append(child)
            pending.append(child)
    return sorted(nodes, key=lambda node: [int(part) for part in node.path.split(".")])


def relations_in(plan: Mapping[str, Any]) -> set[str]:
    return {node.relation for node in walk(plan) if node.relation}


def drop_superseded(findings: list[Finding]) -> list[Finding]:
    """A specific finding replaces a generic one about the same subject: an ILIKE seq scan is an
    ilike_scan, not also a missing_index. Detector modules declare this with `SUPERSEDES`."""
    modules = registry.detector_modules()
    shadowed = {
        (victim, finding.evidence.get("subject"))
        for finding in findings
        for victim in getattr(modules.get(finding.id), "SUPERSEDES", ())
    }
    return [f for f in findings if (f.id, f.evidence.get("subject")) not in shadowed]


def analyze_plan(
    plan: Mapping[str, Any],
    table_rows: Mapping[str, float] | None = None,
    indexed_columns: Mapping[str, frozenset[str]] | None = None,
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    statement: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Run every plan rule in `detectors/` over one plan.

    `table_rows` (relation -> rows) gates the rules on table size; without it a scan's own count
    stands in. `indexed_columns` (relation -> columns leading an index) lets non_sargable_predicate
    tell a wrapped indexed column from a merely unindexed one. `thresholds` overrides a rule's
    defaults by id (`{"missing_index": {"min_table_rows": 1000}}`). `statement` (query text,
    queryid, calls...) is copied into every finding's evidence.
    """
    view = PlanView(nodes=walk(plan), analyzed="Actual Loops" in plan.get("Plan", plan),
                    table_rows=table_rows or {}, indexed_columns=indexed_columns or {})
    findings: list[Finding] = []
    for entry_id, module in registry.detector_modules().items():
        check: registry.PlanHook | None = getattr(module, "check_plan", None)
        if check is not None:
            findings += check(view, registry.limits(entry_id, thresholds))
    findings = drop_superseded(findings)
    if statement:
        findings = [registry.with_evidence(f, statement=dict(statement)) for f in findings]
    return findings


def _data_modifying(stmt: Any) -> bool:
    ctes = getattr(getattr(stmt, "withClause", None), "ctes", None) or ()
    for cte in ctes:
        query = cte.ctequery if isinstance(cte, CommonTableExpr) else None
        if not isinstance(query, SelectStmt) or _data_modifying(query):
            return True
    return False


_CLIENT_PLACEHOLDER = re.compile(r"%\(\w+\)s|%[sbt]")


def is_read_only_select(sql: str) -> bool:
    """One plain SELECT: no INTO, no row locks, no data-modifying CTE. Only these are ever run.
    psycopg placeholders (`%s`, `%(name)s`) are read as the values they will be."""
    try:
        statements = parse_sql(untyped_literals(_CLIENT_PLACEHOLDER.sub("NULL", sql).replace("%%", "%")))
    except ParseError:
        return False
    if len(statements) != 1 or not isinstance(statements[0].stmt, SelectStmt):
        return False
    stmt = statements[0].stmt
    return not (stmt.intoClause or stmt.lockingClause or _data_modifying(stmt))


_PARAM = re.compile(r"\$(\d+)")


def explain(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Any = None,
    analyze: bool = True,
    timeout_ms: int = EXPLAIN_TIMEOUT_MS,
) -> dict[str, Any]:
    """The JSON plan of `sql` (the top object: "Plan", and timings when analysed).

    ANALYZE really runs the statement, so it is used only for a plain SELECT, inside a READ ONLY
    transaction that is always rolled back, under a statement_timeout. Anything else gets a plain
    EXPLAIN, which plans without executing. A statement with `$n` placeholders and no params (as
    pg_stat_statements records them) is planned generically through PREPARE with NULL arguments,
    which works on every supported server version.
    """
    analyze = analyze and is_read_only_select(sql)
    placeholders = params is None and bool(_PARAM.search(sql))
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze and not placeholders else "FORMAT JSON"
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL transaction_read_only = on")
            conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            if placeholders:
                return _explain_generic(conn, sql)
            row = conn.execute(f"EXPLAIN ({options}) {sql}", params).fetchone()
    except psycopg.errors.QueryCanceled:
        raise UserError(f"EXPLAIN gave up after {timeout_ms} ms: {short(sql, 80)}") from None
    except psycopg.Error as error:
        raise UserError(f"cannot EXPLAIN {short(sql, 80)}: {str(error).strip().splitlines()[0]}") from None
    assert row is not None
    return dict(row[0][0])


def _explain_generic(conn: psycopg.Connection[Any], sql: str) -> dict[str, Any]:
    count = max(int(number) for number in _PARAM.findall(sql))
    return _explain_prepared(conn, sql, ["NULL"] * count, "force_generic_plan")


def _explain_prepared(conn: psycopg.Connection[Any], sql: str, arguments: list[str], mode: str) -> dict[str, Any]:
    conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
    conn.execute(f"PREPARE pglab_plan AS {untyped_literals(sql)}")
    try:
        with conn.transaction():  # a savepoint: if planning fails, DEALLOCATE can still run
            row = conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE pglab_plan({', '.join(arguments)})").fetchone()
    finally:
        conn.execute("DEALLOCATE pglab_plan")  # prepared statements outlive a rollback
    assert row is not None
    return dict(row[0][0])


def explain_custom(conn: psycopg.Connection[Any], sql: str, values: Mapping[int, str],
                   timeout_ms: int = EXPLAIN_TIMEOUT_MS) -> dict[str, Any]:
    """The plain (not executed) custom plan of a `$n` statement for the given values: the plan the
    server makes when it sees them. Same safety as `explain`: READ ONLY, rolled back, time-limited."""
    arguments = [quote(values[number]) for number in sorted(values)]
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL transaction_read_only = on")
            conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            return _explain_prepared(conn, sql, arguments, "force_custom_plan")
    except psycopg.errors.QueryCanceled:
        raise UserError(f"EXPLAIN gave up after {timeout_ms} ms: {short(sql, 80)}") from None
    except psycopg.Error as error:
        raise UserError(f"cannot EXPLAIN {short(sql, 80)}: {str(error).strip().splitlines()[0]}") from None


_CATALOG_FACTS = f"""SELECT /* pglab diagnose */ c.relname AS table_name, greatest(c.reltuples, 0)::bigint AS reltuples,
       i.indpred IS NOT NULL AS is_partial, {INDEX_COLUMNS} AS columns
FROM pg_class c LEFT JOIN pg_index i ON i.indrelid = c.oid
WHERE c.oid = ANY(%s::regclass[])"""


def catalog_facts(
    conn: psycopg.Connection[Any], plan: Mapping[str, Any]
) -> tuple[dict[str, float], dict[str, frozenset[str]]]:
    """(rows per table, columns leading an index per table) for the tables a plan reads, from the
    catalog: what `analyze_plan` needs to gate on table size and to spot a wrapped indexed column."""
    relations = sorted(relations_in(plan))
    if not relations:
        return {}, {}
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(_CATALOG_FACTS, (relations,)).fetchall()
    table_rows = {row["table_name"]: row["reltuples"] for row in rows}
    return table_rows, leading_columns([row for row in rows if row["columns"]])


def check_statement(conn: psycopg.Connection[Any], sql: str, params: Any = None, analyze: bool = True,
                    thresholds: Mapping[str, Mapping[str, float]] | None = None) -> list[Finding]:
    """EXPLAIN one statement (see `explain`) and run the plan rules over it, with table sizes and
    indexes read from the catalog."""
    plan = explain(conn, sql, params, analyze=analyze)
    table_rows, indexed = catalog_facts(conn, plan)
    return analyze_plan(plan, table_rows, indexed, thresholds, statement={"query": sql})


def iter_scans(view: PlanView) -> Iterator[Node]:
    return (node for node in view.nodes if node.is_scan and node.relation)
