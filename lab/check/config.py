"""`[tool.pglab]` in pyproject.toml, merged with the command line (the command line wins).

Keys: `select` and `ignore` (ids or codes), `exclude` (glob patterns of paths to skip),
`per-file-ignores` (glob -> ids or codes, as ruff's), `default-per-file-ignores` (false to drop the
defaults below), `format`, `cache-dir`, `max-connections` (the server limit pool sizes are checked
against when no `--dsn` says otherwise).

Test code, fixtures and benchmark scripts open connections and pools that live for one test or
one run, and read or seed a handful of fixture rows: the pool, timeout and result-size rules have
no premise there, so they are off under those paths by default (each rule's `OFF_IN_TEST_CODE`).
Everything else still runs on them: a missing index or a correlated subquery in a test is the
same statement the application runs.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.errors import UserError

DEFAULT_EXCLUDE = (".git", ".hg", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__", "build", "dist",
                   ".pglab_cache", ".mypy_cache", ".ruff_cache", ".pytest_cache", "site-packages")
DEFAULT_MAX_CONNECTIONS = 100  # PostgreSQL's default max_connections
_KNOWN_KEYS = {"select", "ignore", "exclude", "format", "cache-dir", "max-connections", "per-file-ignores",
               "default-per-file-ignores"}
TEST_CODE_PATTERNS = ("tests/*", "test/*", "test_*.py", "*_test.py", "conftest.py", "bench*/*")


@cache
def _test_code_rules() -> tuple[str, ...]:
    """Rules off by default in test code: each says so, with its reason, as `OFF_IN_TEST_CODE` in
    its catalogue module (connections that live for one test; the few fixture rows a test reads or
    seeds). Query-shape and index rules stay on."""
    return tuple(entry.id for entry in load_catalogue() if getattr(entry.module, "OFF_IN_TEST_CODE", None))


def default_per_file_ignores() -> dict[str, list[str]]:
    return {pattern: list(_test_code_rules()) for pattern in TEST_CODE_PATTERNS}


@dataclass
class Config:
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    format: str = "text"
    cache_dir: Path | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    root: Path = field(default_factory=Path.cwd)
    per_file_ignores: dict[str, list[str]] = field(default_factory=default_per_file_ignores)

    def ignored_here(self, path: str | None) -> set[str]:
        """Ids `per-file-ignores` turns off for `path`. A pattern matches the path relative to the
        project root, any tail of it (so `tests/*` covers `pkg/tests/x.py`) or, without a slash,
        the file name (`conftest.py`)."""
        if not path or not self.per_file_ignores:
            return set()
        relative = _relative(path, self.root)
        parts = relative.split("/")
        tails = ["/".join(parts[index:]) for index in range(len(parts))]
        ignored: set[str] = set()
        for pattern, keys in self.per_file_ignores.items():
            candidates = tails if "/" in pattern else parts[-1:]
            if any(fnmatch.fnmatchcase(tail, pattern) for tail in candidates):
                ignored |= {find_entry(key).id for key in keys}
        return ignored

    def selected_ids(self) -> list[str]:
        """Catalogue ids to run: `select` (all when empty) minus `ignore`, both by id or code."""
        chosen = [find_entry(key).id for key in self.select if key.upper() != "ALL"] if self.select else []
        if not chosen:
            chosen = [entry.id for entry in load_catalogue()]
        ignored = {find_entry(key).id for key in self.ignore}
        return [entry_id for entry_id in chosen if entry_id not in ignored]


def find_pyproject(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start: Path | None = None) -> Config:
    """The `[tool.pglab]` table of the nearest pyproject.toml above `start` (the cwd by default)."""
    start = (start or Path.cwd()).resolve()
    pyproject = find_pyproject(start)
    if pyproject is None:
        return Config(root=start)
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UserError(f"cannot read {pyproject}: {error}") from None
    table = data.get("tool", {}).get("pglab", {})
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise UserError(f"{pyproject}: unknown [tool.pglab] key {unknown[0]!r} "
                        f"(known: {', '.join(sorted(_KNOWN_KEYS))})")
    config = Config(root=pyproject.parent)
    for key in ("select", "ignore", "exclude"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise UserError(f"{pyproject}: [tool.pglab] {key} must be a list of strings")
        setattr(config, key, value)
    config.per_file_ignores = _per_file_ignores(pyproject, table)
    if "format" in table:
        config.format = str(table["format"])
    if "cache-dir" in table:
        config.cache_dir = pyproject.parent / str(table["cache-dir"])
    if "max-connections" in table:
        if not isinstance(table["max-connections"], int) or table["max-connections"] < 1:
            raise UserError(f"{pyproject}: [tool.pglab] max-connections must be a positive integer")
        config.max_connections = table["max-connections"]
    return config


def _per_file_ignores(pyproject: Path, table: dict[str, object]) -> dict[str, list[str]]:
    defaults = table.get("default-per-file-ignores", True)
    if not isinstance(defaults, bool):
        raise UserError(f"{pyproject}: [tool.pglab] default-per-file-ignores must be true or false")
    given = table.get("per-file-ignores", {})
    if not isinstance(given, dict) or not all(
            isinstance(keys, list) and all(isinstance(key, str) for key in keys) for keys in given.values()):
        raise UserError(f"{pyproject}: [tool.pglab] per-file-ignores must map glob patterns to lists of ids")
    for keys in given.values():
        for key in keys:
            find_entry(key)  # an unknown id is a usage error now, not a silent no-op
    merged = default_per_file_ignores() if defaults else {}
    for pattern, keys in given.items():
        merged[pattern] = sorted(set(merged.get(pattern, [])) | set(keys))
    return merged


def _relative(path: str, root: Path) -> str:
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(root):
        candidate = candidate.relative_to(root)
    return candidate.as_posix().removeprefix("./")
