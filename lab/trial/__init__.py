"""The lab: a chat service with each anti-pattern's naive and fixed code path (`service/`), seeded
data (`seed.py`), the baseline that isolates one entry (`baseline.py`), the load (`loadrun.py`),
invariants and probes, the runner (`runner.py`), the verdict (`verdict.py`), the server and its
clean-up (`server.py`), and the report (`report.py`, `terminal.py`, `htmlreport.py`)."""
