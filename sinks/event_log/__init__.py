"""The event log, what it keeps: ``inbound_events`` (``tables``) and its reads (``queries``)."""
