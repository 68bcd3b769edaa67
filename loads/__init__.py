"""Locust load profiles, one module per anti-pattern id (`loads/<id>.py`: a user class and a load
shape), plus what they share: `shapes` (warm-up, ramp, hold), `pacing` (users on a schedule, so
latency is measured without coordinated omission; streams timed to their last chunk), `recorder`
(per-second results for the lab), `sample` (what the profiles know about the seeded data) and
`ceiling` (the load generator's own limit). Never import these into pytest or the app: importing
locust monkey-patches the process with gevent; the lab runs them with `python -m locust`
(`pglab.lab.trial.loadrun`)."""
