"""Read models across services: what one question needs from several services' tables.

- :mod:`sinks.views.lineage` — everything one trace id touched, raw input to effect;
- :mod:`sinks.views.overview` — what each pipeline's records ended as, recently.

Services know each other only through Kafka (the independence contracts of ``.importlinter``),
yet the console's home page and the lineage page ask one question of all of them. This package
is where that is allowed: it reads (``SELECT`` only) the services' tables, and no service
imports it, so a service's own sinks never learn of another service.
"""
