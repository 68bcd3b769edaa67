"""The lab's chat service: users, conversations, messages and notifications over HTTP.

A FastAPI app (`app.py`) on uvicorn with a psycopg 3 async pool, written the way a busy team
writes a first version. Every anti-pattern the lab demonstrates in application code is one module
of `paths/`, named by its id, holding a `naive` and a `fixed` implementation, its route(s), the
invariants it is expected to break and its probe requests; its SQL comes from `fixes/<id>.sql`.
The configuration of a run (`config.py`) says which ids run naive, so runs can mix naive and
fixed paths freely. Start it with
`python -m pglab.lab.trial.service --dsn DSN --port PORT [--naive ID ...] [--override ID=FILE]`.
"""
