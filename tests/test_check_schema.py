"""The schema `pglab check` learns from a project's DDL: applied in dependency order, not file-name
order; migration versions in their own order; teardown scripts and downgrades left out; and said
out loud (tables, indexes, files) so that an empty or wrong schema cannot pass for a clean run."""

from __future__ import annotations

from pathlib import Path

from pglab.lab.check.config import Config
from pglab.lab.check.engine import run

TABLES = """\
CREATE TABLE customers (id bigint, email text NOT NULL);
CREATE TABLE orders (id bigint, customer_id bigint NOT NULL, placed_at timestamptz NOT NULL);
"""
QUERY = "SELECT id FROM orders WHERE customer_id = $1 ORDER BY placed_at DESC LIMIT 20;\n"


def check(directory: Path, *rules: str):
    return run([str(directory)], Config(select=list(rules), per_file_ignores={}), use_cache=False)


def ids(result) -> list[tuple[str, str, int]]:
    return sorted((finding.id, Path(finding.path or "").name, finding.line or 0) for finding in result.findings)


def test_alters_and_indexes_in_files_named_before_the_tables_wait_for_them(tmp_path: Path) -> None:
    (tmp_path / "create_foreign_keys.sql").write_text(
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) REFERENCES customers (id);\n")
    (tmp_path / "create_indexes.sql").write_text(
        "CREATE INDEX orders_customer_placed_idx ON orders (customer_id, placed_at);\n")
    (tmp_path / "create_primary_keys.sql").write_text(
        "ALTER TABLE customers ADD PRIMARY KEY (id);\nALTER TABLE orders ADD PRIMARY KEY (id);\n")
    (tmp_path / "create_tables.sql").write_text(TABLES)
    (tmp_path / "queries.sql").write_text(QUERY)
    result = check(tmp_path, "missing_index", "missing_fk_index", "sort_without_index")
    orders = result.schema.tables["orders"]
    assert set(orders.indexes) == {"orders_customer_placed_idx", "orders_pkey"}
    assert [fk.name for fk in orders.foreign_keys] == ["orders_customer_fkey"]
    assert ids(result) == []  # every index was applied, so nothing is missing
    assert [Path(source).name for source in result.schema.sources] == [
        "create_tables.sql", "create_foreign_keys.sql", "create_indexes.sql", "create_primary_keys.sql"]


def test_teardown_scripts_do_not_wipe_the_schema(tmp_path: Path) -> None:
    (tmp_path / "create_tables.sql").write_text(TABLES + "CREATE INDEX orders_customer_idx ON orders (customer_id);\n")
    (tmp_path / "drop_tables.sql").write_text("DROP TABLE orders;\nDROP TABLE customers;\n")
    (tmp_path / "0003_rollback.down.sql").write_text("DROP INDEX orders_customer_idx;\n")
    (tmp_path / "queries.sql").write_text(QUERY)
    result = check(tmp_path, "missing_index")
    assert set(result.schema.tables) == {"customers", "orders"}
    assert "orders_customer_idx" in result.schema.tables["orders"].indexes
    assert [Path(source).name for source in result.schema.sources] == ["create_tables.sql"]
    assert ids(result) == []


def test_migration_versions_apply_in_their_numeric_order(tmp_path: Path) -> None:
    """V10 drops the index V2 created: in file-name order V10 would run first and the index survive."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "V1__tables.sql").write_text(TABLES)
    (migrations / "V2__index.sql").write_text("CREATE INDEX orders_customer_idx ON orders (customer_id);\n")
    (migrations / "V10__drop_index.sql").write_text("DROP INDEX orders_customer_idx;\n")
    (tmp_path / "queries.sql").write_text(QUERY)
    result = check(tmp_path, "missing_index")
    assert [Path(source).name for source in result.schema.sources] == ["V1__tables.sql", "V2__index.sql",
                                                                       "V10__drop_index.sql"]
    assert "orders_customer_idx" not in result.schema.tables["orders"].indexes
    assert ids(result) == [("missing_index", "queries.sql", 1)]


def test_a_full_schema_dump_beside_old_migrations_stands(tmp_path: Path) -> None:
    """The migration that first created `orders` sorts first, but the dump that creates every table
    is the schema as it stands: its definition wins, the old CREATE is history."""
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_orders.sql").write_text("CREATE TABLE orders (id bigint PRIMARY KEY);\n")
    (tmp_path / "schema.sql").write_text(TABLES + "CREATE INDEX orders_customer_idx ON orders (customer_id);\n")
    result = check(tmp_path, "missing_index")
    assert "customer_id" in result.schema.tables["orders"].columns
    assert "orders_customer_idx" in result.schema.tables["orders"].indexes


def test_the_same_foreign_key_declared_twice_is_one_key(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(TABLES + "ALTER TABLE customers ADD PRIMARY KEY (id);\n"
                                         "ALTER TABLE orders ADD CONSTRAINT orders_customer_fkey "
                                         "FOREIGN KEY (customer_id) REFERENCES customers (id);\n")
    (tmp_path / "update.sql").write_text("ALTER TABLE orders DROP CONSTRAINT orders_customer_fkey;\n"
                                         "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk2 "
                                         "FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE;\n"
                                         "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk3 "
                                         "FOREIGN KEY (customer_id) REFERENCES customers (id);\n")
    result = check(tmp_path, "missing_fk_index")
    assert [fk.name for fk in result.schema.tables["orders"].foreign_keys] == ["orders_customer_fk3"]
    assert [finding.id for finding in result.findings] == ["missing_fk_index"]


def test_alembic_migrations_and_models_are_read_as_schema(tmp_path: Path) -> None:
    versions = tmp_path / "alembic" / "versions"
    versions.mkdir(parents=True)
    (versions / "a1b2_orders.py").write_text('''\
import sqlalchemy as sa
from alembic import op


def upgrade():
    op.create_table("orders", sa.Column("id", sa.BigInteger, primary_key=True),
                    sa.Column("customer_id", sa.BigInteger, nullable=False),
                    sa.Column("number", sa.Text, unique=True, index=True))
    op.create_index("orders_customer_idx", "orders", ["customer_id"])


def downgrade():
    op.drop_index("orders_customer_idx")
    op.drop_table("orders")
''')
    (tmp_path / "models.py").write_text('''\
from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column


class Line(Base):
    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
''')
    result = check(tmp_path, "missing_index", "write_amplification")
    orders, lines = result.schema.tables["orders"], result.schema.tables["order_lines"]
    assert orders.leads("customer_id") and orders.leads("number") and lines.leads("order_id")
    assert [index.unique for index in orders.indexes.values() if index.keys == ("number",)] == [True]
    assert lines.foreign_keys[0].references == "orders"
    assert ids(result) == []  # `unique=True, index=True` is one index in SQLAlchemy, not a redundant pair


def test_the_schema_is_described_and_an_empty_one_warned_about(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(TABLES + "CREATE INDEX orders_customer_idx ON orders (customer_id);\n")
    schema = check(tmp_path, "missing_index").schema
    assert schema.describe() == "2 tables, 1 index from 1 file (" + str(tmp_path / "schema.sql") + ")"
    assert schema.warnings(statements=3) == []
    (tmp_path / "schema.sql").unlink()
    (tmp_path / "queries.sql").write_text(QUERY)
    empty = check(tmp_path, "missing_index").schema
    assert empty.describe() == "0 tables, 0 indexes (no DDL found)"
    assert [warning.kind for warning in empty.warnings(statements=1)] == ["no-schema"]


def test_tables_a_python_test_creates_are_scratch(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(TABLES + "CREATE INDEX orders_customer_idx ON orders (customer_id);\n")
    (tmp_path / "test_orders.py").write_text('''\
def test_orders(conn):
    conn.execute("DROP TABLE orders")
    conn.execute("CREATE TABLE orders (id bigint, customer_id bigint)")
''')
    (tmp_path / "queries.sql").write_text(QUERY)
    result = check(tmp_path, "missing_index")
    assert "orders_customer_idx" in result.schema.tables["orders"].indexes
    assert [Path(source).name for source in result.schema.sources] == ["schema.sql"]


def test_a_renamed_table_stays_in_its_schema(tmp_path: Path) -> None:
    (tmp_path / "schema.sql").write_text(TABLES + "CREATE TABLE stats.orders_new (id bigint PRIMARY KEY);\n"
                                         "ALTER TABLE stats.orders_new RENAME TO orders;\n")
    tables = check(tmp_path, "missing_index").schema.tables
    assert "customer_id" in tables["orders"].columns and "stats.orders" in tables


def test_alembic_revisions_apply_in_their_down_revision_order(tmp_path: Path) -> None:
    """The hash prefixes sort the index's removal before its creation; the chain does not."""
    versions = tmp_path / "alembic" / "versions"
    versions.mkdir(parents=True)
    (versions / "0c3e_drop_customer_index.py").write_text('''\
from alembic import op

revision = "0c3e"
down_revision = "f7a1"


def upgrade():
    op.drop_index("orders_customer_idx", table_name="orders")
''')
    (versions / "f7a1_orders.py").write_text('''\
import sqlalchemy as sa
from alembic import op

revision: str = "f7a1"
down_revision = None


def upgrade():
    op.create_table("orders", sa.Column("id", sa.BigInteger, primary_key=True),
                    sa.Column("customer_id", sa.BigInteger, nullable=False))
    op.create_index("orders_customer_idx", "orders", ["customer_id"])
''')
    orders = check(tmp_path, "missing_index").schema.tables["orders"]
    assert not orders.leads("customer_id")
