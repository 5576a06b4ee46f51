"""The dead-letter store and Replay, shared by every pipeline.

- :mod:`sinks.dead_letters.tables` — ``dead_letters`` and ``replays`` (migrations ``0002``,
  ``0008``);
- :mod:`sinks.dead_letters.store` — a dead record's row (pure) and the repository that writes
  it once;
- :mod:`sinks.dead_letters.metrics` — depth, age and replay gauges read from the table;
- :mod:`sinks.dead_letters.queries` — what waits for a person, per pipeline (the console);
- :mod:`sinks.dead_letters.replay` — replay and discard (the API and the CLI run the same code),
  with its filter (:mod:`~sinks.dead_letters.replay_filter`) and its ``Idempotency-Key`` leases
  (:mod:`~sinks.dead_letters.replay_requests`).
"""
