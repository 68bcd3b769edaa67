"""`[tool.pglab]` in pyproject.toml, merged with the command line (the command line wins).

Keys: `select` and `ignore` (ids or codes), `exclude` (glob patterns of paths to skip),
`format`, `cache-dir`, `max-connections` (the server limit pool sizes are checked against when
no `--dsn` says otherwise).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pglab.lab.core.catalogue import find_entry, load_catalogue
from pglab.lab.core.errors import UserError

DEFAULT_EXCLUDE = (".git", ".hg", ".venv", "venv", ".tox", ".nox", "node_modules", "__pycache__", "build", "dist",
                   ".pglab_cache", ".mypy_cache", ".ruff_cache", ".pytest_cache", "site-packages")
DEFAULT_MAX_CONNECTIONS = 100  # PostgreSQL's default max_connections
_KNOWN_KEYS = {"select", "ignore", "exclude", "format", "cache-dir", "max-connections"}


@dataclass
class Config:
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    format: str = "text"
    cache_dir: Path | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    root: Path = field(default_factory=Path.cwd)

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
    if "format" in table:
        config.format = str(table["format"])
    if "cache-dir" in table:
        config.cache_dir = pyproject.parent / str(table["cache-dir"])
    if "max-connections" in table:
        if not isinstance(table["max-connections"], int) or table["max-connections"] < 1:
            raise UserError(f"{pyproject}: [tool.pglab] max-connections must be a positive integer")
        config.max_connections = table["max-connections"]
    return config
