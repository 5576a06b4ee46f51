"""The local runtime: everything ``synapseops up`` needs to run the platform on one machine.

- :mod:`synapseops.local.kafka_broker` fetches Apache Kafka's jars from Maven Central and runs a
  single-node KRaft broker with ``java`` (no Docker).
- :mod:`synapseops.local.postgres` runs a PostgreSQL 15 cluster under the data folder when no
  ``SYNAPSEOPS_DATABASE_URL`` is given, and applies the migrations.
- :mod:`synapseops.local.processes` supervises the platform's own Python processes (detached,
  pid file, log file, HTTP health).
- :mod:`synapseops.local.stack` puts them together in order: ``up`` / ``down`` / ``status``.

Everything lives under ``settings.data_dir`` (``logs/``, ``run/``, ``cache/``, ``kafka/``,
``postgres/``) and every port comes from :class:`~synapseops.settings.Settings`, so a second
stack (a test's) can run beside the developer's.
"""
