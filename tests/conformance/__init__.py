"""One suite, run against every store: (backend x engine) from the ``backend`` fixture."""
