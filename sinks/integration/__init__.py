"""API Integration, what it keeps: tables, the records store, credentials, runs.

- :mod:`sinks.integration.tables` — the SQLAlchemy Core tables (migrations ``0004``, ``0005``);
- :mod:`sinks.integration.store` — connectors, endpoints, flows, credentials and mapping
  versions (the write side of the management API, and what the pipeline reads);
- :mod:`sinks.integration.credentials` — Fernet at rest, auth headers out;
- :mod:`sinks.integration.runs` — the write side of Runs (one row per delivery attempt);
- :mod:`sinks.integration.run_queries` — the read side of Runs (lists, filters, re-run picks).
"""
