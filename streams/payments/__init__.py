"""Payment Gateway: Stripe events to exactly one settlement per payment in the finance system.

``events`` turns raw Stripe bytes into a typed :class:`PaymentEvent`; ``settlement`` decides,
without I/O, what an event does to a payment's settlements. The agents wire those to Kafka,
PostgreSQL and the finance ledger.
"""
