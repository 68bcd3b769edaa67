"""Locust load profiles, one module per anti-pattern id. Never import these into pytest or the app:
importing locust monkey-patches the process with gevent."""
