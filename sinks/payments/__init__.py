"""Payment Gateway, what it keeps: tables, the settlement repository, read queries, finance.

- :mod:`sinks.payments.tables` — the SQLAlchemy Core tables (migrations ``0003``, ``0006``);
- :mod:`sinks.payments.store` — the write side: :class:`~sinks.payments.store.SettlementRepository`
  (decide under lock, record the finance answer), with its row statements in
  :mod:`sinks.payments.rows`;
- :mod:`sinks.payments.queries` — the read side of the API (lists, trail, volumes);
- :mod:`sinks.payments.reconciliation` — the read side's day report (accepted events against
  where they ended);
- :mod:`sinks.payments.finance` — the finance ledger's HTTP client.
"""
