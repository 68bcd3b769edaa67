"""Runtime detectors: EXPLAIN plan rules and pg_stat / catalog checks, one module per anti-pattern id.

A module `detectors/<id>.py` may define:

- `THRESHOLDS`: its tunable limits and their defaults (callers override them by id);
- `check_plan(view, limits)`: a plan rule over a `pglab.lab.runtime.plans.PlanView`;
- `check_stats(window, limits)`: a rule over two statistics snapshots (`pglab.lab.runtime.stats.Window`);
- `check_refusal(message, limits)`: what it means when the server refuses pglab's own connection;
- `check_captured(groups, settings)` / `check_captured_transactions(transactions, settings)`: rules
  over the statements and transactions the pytest plugin captured in one test;
- `SUPERSEDES`: ids whose findings about the same subject this module's findings replace.

Each returns `Finding`s whose evidence names a `subject` (a plan node, a table, a session...).
Discovery goes by catalogue id (`pglab.lab.runtime.registry`), so adding a detector is adding its file.
"""
