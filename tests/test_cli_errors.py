"""Bad input gets one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

from cli import assert_one_line_error, run_pglab
from conftest import embedded_only
from pglab.lab.postgres.launcher import EmbeddedPostgres, free_port


def test_unknown_command() -> None:
    result = run_pglab("frobnicate")
    assert result.returncode == 2
    assert_one_line_error(result, "invalid choice: 'frobnicate'")


def test_unknown_id_suggests_the_nearest() -> None:
    result = run_pglab("explain", "n_plus_on")
    assert result.returncode == 2
    assert_one_line_error(result, "unknown anti-pattern 'n_plus_on'", "did you mean n_plus_one")


def test_unknown_id_with_nothing_near() -> None:
    result = run_pglab("explain", "zzzzzz")
    assert result.returncode == 2
    assert_one_line_error(result, "unknown anti-pattern", "pglab catalog")


def test_unreachable_dsn() -> None:
    result = run_pglab("db", "status", "--dsn", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    assert result.returncode == 2
    assert_one_line_error(result, "cannot connect", "Connection refused")


def test_malformed_dsn() -> None:
    result = run_pglab("db", "status", "--dsn", "not a dsn")
    assert result.returncode == 2
    assert_one_line_error(result, "invalid DSN")


@embedded_only("needs a server with password authentication, which pglab starts itself")
def test_wrong_password_names_the_cause_and_hides_the_password() -> None:
    with EmbeddedPostgres(password="right-secret", host_auth="scram-sha-256") as server:
        result = run_pglab("db", "status", "--dsn", f"postgresql://postgres:wrong-secret@127.0.0.1:{server.port}/postgres")
        good = run_pglab("db", "status", "--dsn", f"postgresql://postgres:right-secret@127.0.0.1:{server.port}/postgres")
    assert result.returncode == 2
    assert_one_line_error(result, "password authentication failed")
    assert "wrong-secret" not in result.stderr
    assert good.returncode == 0 and "PostgreSQL 18" in good.stdout


def test_bad_server_setting_syntax() -> None:
    result = run_pglab("db", "start", "--set", "no_equals_sign", env={"PGLAB_STATE_DIR": "/tmp/pglab-test-none"})
    assert result.returncode == 2
    assert_one_line_error(result, "NAME=VALUE")
