"""Data Aggregation's tables: the warehouse (``warehouse.events``, the loader's offsets) and
the service's own (data sources, ingestion jobs, the de-duplication keys of the pipeline)."""
