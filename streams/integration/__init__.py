"""API Integration: source events of a connector's endpoint, mapped and sent to a target.

- :mod:`streams.integration.delivery` — pure: the source event read from a record's headers,
  the mapped outbound request, the ``Idempotency-Key`` (no I/O);
- :mod:`streams.integration.commands` — the re-run command carried on
  ``integration.commands``;
- :mod:`streams.integration.poller` — polled REST sources (interval, cursor) publishing to
  ``integration.events``;
- :mod:`streams.integration.kafka_source` — a flow whose source is a Kafka topic, forwarded
  onto ``integration.events`` with the flow's headers.

The pipeline that wires them to the road is :mod:`streams.integration.pipeline`.
"""
