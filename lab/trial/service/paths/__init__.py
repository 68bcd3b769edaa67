"""The anti-patterns the service carries in its code, one module per id, each with `naive` and
`fixed` implementations of the same signature. Discovered by module name: adding an anti-pattern
to the service is adding a module here, never editing a list."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pglab.lab.trial.service.config import ServiceConfig


def available() -> tuple[str, ...]:
    """The ids that have a code path in the service."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__)))


def choose(entry_id: str, config: ServiceConfig) -> Any:
    """The implementation this run uses for `entry_id`: naive if the run asks for it, else fixed."""
    module = importlib.import_module(f"{__name__}.{entry_id}")
    return module.naive if config.is_naive(entry_id) else module.fixed
