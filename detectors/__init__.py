"""Runtime detectors: EXPLAIN plan rules and pg_stat / catalog checks, one module per anti-pattern id."""
