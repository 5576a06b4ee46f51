"""Payment Gateway: Stripe events to exactly one settlement per payment in the finance system.

``events`` turns raw Stripe bytes into a typed :class:`PaymentEvent`; ``settlement`` decides,
without I/O, what an event does to a payment's settlements (both pure). ``pipeline`` is the
``payment-settlement`` pipeline that wires them to Kafka, PostgreSQL and the finance ledger.
"""
