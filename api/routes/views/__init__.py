"""Routes over the read models across services (:mod:`sinks.views`): lineage and overview."""
